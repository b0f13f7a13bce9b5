//! The container's first start, without Docker: the Dockerfile's runtime
//! stage is read (its user, volume directories, environment, entrypoint,
//! command and healthcheck), the volume directories are made empty and owned
//! by that user as the image makes them, and the same entrypoint runs as
//! that unprivileged user (dropped with `setpriv` when the suite runs as
//! root). The first start must succeed — KEK generated, database created,
//! journal opened — and the image's healthcheck command must report it ready.
//! The compose file must use the same healthcheck and volume paths.

use std::{
    os::unix::fs::{MetadataExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

/// The runtime stage of the Dockerfile, as the test needs it.
#[derive(Debug, Default)]
struct Image {
    uid: u32,
    env: Vec<(String, String)>,
    volumes: Vec<String>,
    /// Directories the image creates owned by the runtime user.
    owned_dirs: Vec<String>,
    entrypoint: Vec<String>,
    cmd: Vec<String>,
    healthcheck: Vec<String>,
}

fn json_list(text: &str) -> Vec<String> {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{text}: not a JSON list: {e}"))
}

/// Reads the last stage of the Dockerfile (continuation lines joined).
fn image() -> Image {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile")).unwrap();
    let joined = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("\\\n", " ");
    let runtime = joined.rsplit("\nFROM ").next().unwrap();
    let mut image = Image::default();
    for line in runtime.lines().map(str::trim) {
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        match word {
            "USER" => {
                image.uid = rest
                    .split(':')
                    .next()
                    .unwrap()
                    .parse()
                    .expect("USER is numeric");
            }
            "ENV" => image.env.extend(rest.split_whitespace().map(|pair| {
                let (k, v) = pair.split_once('=').expect("ENV KEY=value");
                (k.to_owned(), v.to_owned())
            })),
            "VOLUME" => image.volumes = json_list(rest),
            "ENTRYPOINT" => image.entrypoint = json_list(rest),
            "CMD" => image.cmd = json_list(rest),
            "HEALTHCHECK" => image.healthcheck = json_list(rest.split_once(" CMD ").unwrap().1),
            "RUN" if rest.contains("install -d") => {
                let args = rest.split("install -d").nth(1).unwrap();
                image.owned_dirs = args
                    .split_whitespace()
                    .filter(|a| a.starts_with('/'))
                    .map(str::to_owned)
                    .collect();
                assert!(
                    args.contains("-o portcullis"),
                    "owned by the runtime user: {args}"
                );
                assert!(args.contains("-m 0700"), "private to it: {args}");
            }
            _ => {}
        }
    }
    image
}

/// Maps a path of the image into `root`.
fn inside(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

/// A loopback port nobody listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A command running `args` of the image as `uid`, in `root`, with the
/// image's environment (paths mapped into `root`, the port replaced).
fn as_image_user(image: &Image, root: &Path, binary: &Path, args: &[String], port: u16) -> Command {
    let running_as_root = rustix_uid() == 0;
    let mut command = if running_as_root {
        let mut c = Command::new("setpriv");
        c.args([
            format!("--reuid={}", image.uid),
            format!("--regid={}", image.uid),
            "--clear-groups".into(),
            "--".into(),
        ])
        .arg(binary);
        c
    } else {
        Command::new(binary)
    };
    command.args(args).env_clear().env("PATH", "/usr/bin:/bin");
    for (key, value) in &image.env {
        let value = match key.as_str() {
            "PORTCULLIS_LISTEN" => format!("127.0.0.1:{port}"),
            _ if value.contains("/var/lib/portcullis") => {
                let (prefix, path) = value.split_at(value.find("/var/lib/portcullis").unwrap());
                format!("{prefix}{}", inside(root, path).display())
            }
            _ => value.clone(),
        };
        command.env(key, value);
    }
    command.current_dir(inside(root, "/var/lib/portcullis"));
    command
}

/// The effective uid of this process (from /proc, no libc call).
fn rustix_uid() -> u32 {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(u32::MAX)
}

#[test]
fn the_image_entrypoint_starts_as_its_user_on_empty_volumes_and_passes_its_healthcheck() {
    let image = image();
    assert_eq!(image.uid, 10001, "{image:?}");
    assert_eq!(image.entrypoint, ["portcullis"]);
    assert_eq!(image.cmd, ["serve"]);
    assert_eq!(image.healthcheck, ["portcullis", "health"]);
    for volume in &image.volumes {
        assert!(
            image.owned_dirs.contains(volume),
            "the image creates {volume} for its user"
        );
    }

    // The image's filesystem: the binary, and the empty volume directories
    // owned by the runtime user (what Docker copies into a new named volume).
    let root = tempfile::tempdir().unwrap();
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let binary = inside(root.path(), "/usr/local/bin/portcullis");
    std::fs::create_dir_all(binary.parent().unwrap()).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_portcullis"), &binary).unwrap();
    std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).unwrap();
    let home = inside(root.path(), "/var/lib/portcullis");
    std::fs::create_dir_all(&home).unwrap();
    for dir in &image.owned_dirs {
        let dir = inside(root.path(), dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    if rustix_uid() == 0 {
        let status = Command::new("chown")
            .arg("-R")
            .arg(format!("{0}:{0}", image.uid))
            .arg(&home)
            .status()
            .unwrap();
        assert!(status.success());
    }

    let port = free_port();
    let args: Vec<String> = image.cmd.clone();
    let mut server = as_image_user(&image, root.path(), &binary, &args, port)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the entrypoint");
    let logs = crate::helpers::stderr_lines(&mut server);
    let health = || {
        as_image_user(&image, root.path(), &binary, &image.healthcheck[1..], port)
            .output()
            .unwrap()
    };
    // The healthcheck, as Docker runs it, until it passes (first start:
    // migrations, KEK and key generation) or the server exits.
    let started = Instant::now();
    let mut passed = None;
    while started.elapsed() < Duration::from_secs(60) {
        if let Some(status) = server.try_wait().unwrap() {
            let lines: Vec<String> = logs.try_iter().collect();
            panic!("the first start failed ({status}):\n{}", lines.join("\n"));
        }
        let out = health();
        if out.status.success() {
            passed = Some(String::from_utf8_lossy(&out.stdout).into_owned());
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // Stop the server before any assertion can leave it running.
    let _ = Command::new("kill").arg(server.id().to_string()).status();
    let exit = server.wait().unwrap();
    let passed = passed.expect("the healthcheck passes within 60 s");
    assert!(passed.contains("\"ready\""), "{passed}");
    assert!(exit.success(), "SIGTERM ends the server cleanly: {exit}");

    // What the first start wrote, owned by the runtime user and private.
    let kek = inside(root.path(), "/var/lib/portcullis/keys/kek");
    let db = inside(root.path(), "/var/lib/portcullis/data/portcullis.db");
    for file in [&kek, &db] {
        let meta = std::fs::metadata(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert_eq!(
            meta.uid(),
            if rustix_uid() == 0 {
                image.uid
            } else {
                rustix_uid()
            }
        );
        assert_eq!(
            meta.permissions().mode() & 0o777,
            0o600,
            "{}",
            file.display()
        );
    }

    // After it stopped, the healthcheck fails (exit code 1, the URL named).
    let out = health();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("127.0.0.1:{port}/readyz")));
}

#[test]
fn compose_uses_the_image_healthcheck_and_volumes() {
    let compose =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docker-compose.yml"))
            .unwrap();
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&compose).unwrap();
    let service = &doc["services"]["portcullis"];
    assert_eq!(
        service["healthcheck"]["test"],
        serde_yaml_ng::from_str::<serde_yaml_ng::Value>("[CMD, portcullis, health]").unwrap()
    );
    let image = image();
    let mounts: Vec<&str> = service["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().split(':').nth(1).unwrap())
        .collect();
    for mount in &mounts {
        assert!(
            image.owned_dirs.iter().any(|d| d == mount),
            "{mount} is created by the image for its user"
        );
    }
}
