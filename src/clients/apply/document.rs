//! Reading a declarative document: YAML or JSON (JSON is YAML), from one
//! file or several merged, into the clients it declares — each validated as
//! the admin API validates a registration, its secret reference resolved.
//!
//! Every error is collected, not only the first: a client's first problem
//! (its metadata is checked in one order, as the admin API does), its
//! secret's, duplicates and the document's own. Each names the file and the
//! line ([`super::locate`]) and the client and member.

use std::{collections::HashMap, path::Path};

use serde_yaml_ng::Value;

use super::{
    entry::{Entries, Entry},
    locate::Locator,
    secret_ref::{Environment, SecretRef},
};
use crate::clients::{import::ExistingSecret, metadata::Limits, model::ClientMetadata, ClientId};

/// One file of a document (or the body of `POST /admin/apply`).
#[derive(Clone, Debug)]
pub struct Source {
    /// Its name in messages: a path, or `api`.
    pub name: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// A client the document declares.
#[derive(Debug)]
pub struct DeclaredClient {
    /// Its id.
    pub id: ClientId,
    /// Its validated metadata.
    pub metadata: ClientMetadata,
    /// Its secret and the reference it was read from (secret methods only).
    pub secret: Option<(ExistingSecret, SecretRef)>,
    /// Where it is declared, `file:line`.
    pub place: String,
}

/// A validated document.
#[derive(Debug)]
pub struct Document {
    /// The owner label apply writes on the clients it manages.
    pub owner: String,
    /// The clients, in document order.
    pub clients: Vec<DeclaredClient>,
}

/// The top-level members of a document.
const TOP_LEVEL: &[&str] = &["owner", "clients"];

/// The longest owner label.
const MAX_OWNER_CHARS: usize = 100;

impl Document {
    /// Reads and validates `sources` (merged in order): `Err` lists every
    /// problem found, each naming file and line.
    pub fn parse(
        sources: &[Source],
        limits: &Limits,
        env: &dyn Environment,
    ) -> Result<Self, Vec<String>> {
        let mut errors = Vec::new();
        let mut owner: Option<(String, String)> = None;
        let mut clients = Vec::new();
        let mut seen: HashMap<String, String> = HashMap::new();
        let mut names_owner = false;
        if sources.is_empty() {
            errors.push("the document has no files (*.yaml, *.yml or *.json)".to_owned());
        }
        for source in sources {
            let Some(file) = read_file(source, &mut errors) else {
                continue;
            };
            let locator = Locator::new(&file.text);
            names_owner |= file.names_owner;
            if let Some(name) = file.owner {
                match &owner {
                    Some((first, at)) if *first != name => errors.push(format!(
                        "{}:{}: owner {name:?} differs from {first:?} given at {at}; a document has one owner",
                        source.name,
                        line_of(&locator, "owner", 0, locator.len())
                    )),
                    Some(_) => {}
                    None => {
                        let at = format!(
                            "{}:{}",
                            source.name,
                            line_of(&locator, "owner", 0, locator.len())
                        );
                        owner = Some((name, at));
                    }
                }
            }
            let entries = Entries::new(&locator, &file.clients);
            for (index, entry) in file.clients.iter().enumerate() {
                let span = entries.span(index);
                let client = Entry {
                    file: &source.name,
                    index,
                    locator: &locator,
                    span,
                };
                // Ids are compared as written, so a duplicate is found even
                // when one of the two entries is invalid.
                if let Some(id) = entry.get("client_id").and_then(Value::as_str) {
                    if let Some(first) = seen.get(id) {
                        errors.push(format!(
                            "{}: client {id:?}: client_id is declared twice (first at {first})",
                            client.place(Some("client_id")),
                        ));
                        continue;
                    }
                    seen.insert(id.to_owned(), client.place(None));
                }
                match client.read(entry, limits, env) {
                    Ok(declared) => clients.push(declared),
                    Err(mut found) => errors.append(&mut found),
                }
            }
        }
        if !names_owner && !sources.is_empty() {
            errors.push(format!(
                "{}:1: owner is required: the label apply writes on the clients it manages",
                sources[0].name
            ));
        }
        match owner {
            Some((owner, _)) if errors.is_empty() => Ok(Self { owner, clients }),
            _ => Err(errors),
        }
    }
}

/// A file's top-level members.
struct File {
    text: String,
    owner: Option<String>,
    /// Whether the file has an `owner` key (valid or not).
    names_owner: bool,
    clients: Vec<Value>,
}

/// Parses one file's top level; problems go to `errors`.
fn read_file(source: &Source, errors: &mut Vec<String>) -> Option<File> {
    let name = &source.name;
    let Ok(text) = String::from_utf8(source.bytes.clone()) else {
        errors.push(format!("{name}: the file is not UTF-8 text"));
        return None;
    };
    if text.trim().is_empty() {
        errors.push(format!(
            "{name}:1: the file is empty; a document holds owner and clients"
        ));
        return None;
    }
    let value: Value = match serde_yaml_ng::from_str(&text) {
        Ok(value) => value,
        Err(e) => {
            let line = e.location().map_or(1, |l| l.line());
            errors.push(format!("{name}:{line}: not valid YAML or JSON: {e}"));
            return None;
        }
    };
    let locator = Locator::new(&text);
    let Value::Mapping(top) = value else {
        errors.push(format!(
            "{name}:1: a document is a mapping with owner and clients, not {}",
            kind(&value)
        ));
        return None;
    };
    let mut owner = None;
    let mut clients = Vec::new();
    let names_owner = top.contains_key("owner");
    for (key, value) in top {
        let Value::String(key) = key else {
            errors.push(format!("{name}:1: a top-level key is not a string"));
            continue;
        };
        let line = line_of(&locator, &key, 0, text.len());
        match (key.as_str(), value) {
            ("owner", Value::String(o)) => match check_owner(&o) {
                Ok(()) => owner = Some(o),
                Err(e) => {
                    errors.push(format!("{name}:{line}: owner: {e}"));
                }
            },
            ("owner", other) => {
                errors.push(format!(
                    "{name}:{line}: owner must be a string, not {}",
                    kind(&other)
                ));
            }
            ("clients", Value::Sequence(list)) => clients = list,
            ("clients", Value::Null) => {}
            ("clients", other) => {
                errors.push(format!(
                    "{name}:{line}: clients must be a list, not {}",
                    kind(&other)
                ));
            }
            (other, _) => {
                errors.push(format!(
                    "{name}:{line}: unknown top-level key {other:?}: a document holds {}",
                    TOP_LEVEL.join(" and ")
                ));
            }
        }
    }
    Some(File {
        text,
        owner,
        names_owner,
        clients,
    })
}

/// Owner labels are short printable text without white space.
fn check_owner(owner: &str) -> Result<(), String> {
    if owner.is_empty()
        || owner.chars().count() > MAX_OWNER_CHARS
        || owner.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "the owner label must be 1 to {MAX_OWNER_CHARS} characters without white space"
        ));
    }
    Ok(())
}

fn line_of(locator: &Locator<'_>, key: &str, from: usize, until: usize) -> usize {
    locator
        .key(key, from, until)
        .map_or(1, |at| locator.line(at))
}

/// A YAML value's kind, for messages.
pub(super) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// Reads a document from `path`: the file, or the `*.yaml`, `*.yml` and
/// `*.json` files of the directory in name order.
pub fn read_sources(path: &Path) -> Result<Vec<Source>, String> {
    let read = |p: &Path| {
        std::fs::read(p)
            .map(|bytes| Source {
                name: p.display().to_string(),
                bytes,
            })
            .map_err(|e| format!("{}: cannot be read: {e}", p.display()))
    };
    if !path.is_dir() {
        return Ok(vec![read(path)?]);
    }
    let mut files: Vec<_> = std::fs::read_dir(path)
        .map_err(|e| format!("{}: cannot be read: {e}", path.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format!(
            "{}: the directory holds no *.yaml, *.yml or *.json file",
            path.display()
        ));
    }
    files.iter().map(|p| read(p)).collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const LIMITS: Limits = crate::clients::metadata::TEST_LIMITS;

    /// An environment with one variable and no files.
    struct Fake;

    impl Environment for Fake {
        fn var(&self, name: &str) -> Option<String> {
            (name == "S").then(|| "a-secret-of-enough-characters".to_owned())
        }
        fn read(&self, _: &Path) -> Result<String, String> {
            Err("No such file or directory".into())
        }
    }

    fn parse(files: &[(&str, &str)]) -> Result<Document, Vec<String>> {
        let sources: Vec<Source> = files
            .iter()
            .map(|(name, text)| Source {
                name: (*name).to_owned(),
                bytes: text.as_bytes().to_vec(),
            })
            .collect();
        Document::parse(&sources, &LIMITS, &Fake)
    }

    #[test]
    fn a_valid_document_declares_its_clients_with_their_secrets() {
        let doc = parse(&[(
            "c.yaml",
            "owner: t\nclients:\n  - client_id: a\n    secret: {env: S}\n  - client_id: b\n    token_endpoint_auth_method: private_key_jwt\n    jwks_uri: https://b.example/jwks\n",
        )])
        .unwrap();
        assert_eq!(doc.owner, "t");
        assert_eq!(doc.clients.len(), 2);
        assert!(doc.clients[0].secret.is_some());
        assert_eq!(doc.clients[1].place, "c.yaml:5");
    }

    #[test]
    fn json_documents_and_merged_files_are_read() {
        let doc = parse(&[
            (
                "a.json",
                r#"{"owner": "t", "clients": [{"client_id": "a", "secret": {"env": "S"}}]}"#,
            ),
            ("b.yaml", "clients:\n  - {client_id: b, secret: {env: S}}\n"),
        ])
        .unwrap();
        let ids: Vec<&str> = doc.clients.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
    }

    #[test]
    fn every_problem_is_reported_with_file_line_client_and_member() {
        let errors = parse(&[(
            "c.yaml",
            "owner: t\nclients:\n  - client_id: a\n    scopes: x\n    secret: {env: S}\n  - client_id: b\n    secret: {file: /missing}\n  - client_id: a\n    secret: {env: S}\n",
        )])
        .unwrap_err();
        assert_eq!(errors.len(), 3, "{errors:#?}");
        assert!(
            errors[0].starts_with("c.yaml:4: client \"a\", scopes: unknown client metadata"),
            "{}",
            errors[0]
        );
        assert!(
            errors[1].starts_with(
                "c.yaml:7: client \"b\", secret: secret file /missing: cannot be read"
            ),
            "{}",
            errors[1]
        );
        assert!(
            errors[2].starts_with(
                "c.yaml:8: client \"a\": client_id is declared twice (first at c.yaml:3)"
            ),
            "{}",
            errors[2]
        );
    }

    #[test]
    fn owners_must_agree_across_files() {
        let errors = parse(&[("a.yaml", "owner: t\n"), ("b.yaml", "owner: u\n")]).unwrap_err();
        assert!(
            errors[0].starts_with("b.yaml:1: owner \"u\" differs from \"t\" given at a.yaml:1"),
            "{errors:?}"
        );
    }
}
