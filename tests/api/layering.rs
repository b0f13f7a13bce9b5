//! The layering rule: only the web layer (`src/http/`, `src/tls.rs`, `src/cli.rs`,
//! `src/startup.rs`, `src/main.rs`) may name the web layer or its state;
//! the protocol, storage and domain modules stay free of it. And the size
//! rule: no source file grows past about 400 lines (tests excluded).

use std::path::{Path, PathBuf};

/// The web layer: routes and handlers, the HTTPS listener, the command line
/// and the start-up that wires everything together.
const WEB_LAYER: [&str; 5] = ["http/", "tls.rs", "cli.rs", "startup.rs", "main.rs"];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The file's code: without its unit-test module and without comments (a
/// doc link is not a dependency).
fn code(text: &str) -> String {
    let text = text
        .find("#[cfg(test)]\nmod tests")
        .map_or(text, |i| &text[..i]);
    text.lines()
        .map(|l| l.find("//").map_or(l, |i| &l[..i]))
        .collect::<Vec<_>>()
        .join("\n")
}

fn all_sources() -> Vec<(String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let rel = p
                .strip_prefix(&src)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            (rel, std::fs::read_to_string(&p).expect("read source"))
        })
        .collect()
}

#[test]
fn only_the_web_layer_imports_the_web_layer() {
    let forbidden = ["crate::http", "http::state", "AppState", "actix_web"];
    let mut violations = Vec::new();
    for (rel, text) in all_sources() {
        if WEB_LAYER.iter().any(|w| rel.starts_with(w)) || rel == "lib.rs" {
            continue;
        }
        let code = code(&text);
        for name in forbidden {
            if code.contains(name) {
                violations.push(format!("src/{rel} names {name}"));
            }
        }
    }
    // The checker itself must see what it checks.
    let sample = "use crate::http::state::AppState;";
    assert!(forbidden.iter().any(|f| code(sample).contains(f)));
    assert!(
        violations.is_empty(),
        "only src/http/, src/cli.rs, src/startup.rs and src/main.rs may use the web layer:\n{}",
        violations.join("\n")
    );
}

#[test]
fn no_source_file_is_over_about_400_lines() {
    let long: Vec<String> = all_sources()
        .into_iter()
        .filter_map(|(rel, text)| {
            let lines = code(&text).lines().count();
            (lines > 420).then(|| format!("src/{rel}: {lines} lines"))
        })
        .collect();
    assert!(long.is_empty(), "split these files:\n{}", long.join("\n"));
}
