//! One entry of a document's `clients` list: where it is in the text, and
//! the client it declares — its metadata validated as the admin API
//! validates a registration, its secret reference resolved — or every
//! problem with it, each naming file, line, client and member.

use serde_yaml_ng::{Mapping, Value};

use super::{
    document::{kind, DeclaredClient},
    locate::Locator,
    secret_ref::{Environment, SecretRef, REFERENCE_FORMS},
};
use crate::clients::{import::ExistingSecret, members, metadata::Limits, model::ClientMetadata};

/// Where each entry of a `clients` list starts in the text.
pub(super) struct Entries {
    starts: Vec<usize>,
    end: usize,
}

impl Entries {
    pub(super) fn new(locator: &Locator<'_>, list: &[Value]) -> Self {
        let mut from = locator.key("clients", 0, locator.len()).unwrap_or(0);
        let mut starts = Vec::with_capacity(list.len());
        for entry in list {
            let first = match entry {
                Value::Mapping(m) => m.keys().next().and_then(Value::as_str),
                _ => None,
            };
            let start = first
                .and_then(|k| locator.key(k, from, locator.len()))
                .unwrap_or(from);
            starts.push(start);
            from = start + 1;
        }
        Self {
            starts,
            end: locator.len(),
        }
    }

    pub(super) fn span(&self, index: usize) -> (usize, usize) {
        let start = self.starts[index];
        let end = self.starts.get(index + 1).copied().unwrap_or(self.end);
        (start, end.max(start))
    }
}

/// One entry of `clients`, for reading and for messages.
pub(super) struct Entry<'a> {
    /// The file's name.
    pub(super) file: &'a str,
    /// Its position in the list.
    pub(super) index: usize,
    /// The file's text.
    pub(super) locator: &'a Locator<'a>,
    /// Where it starts and the next entry starts.
    pub(super) span: (usize, usize),
}

impl Entry<'_> {
    /// `file:line` of `member` in this entry, or of the entry.
    pub(super) fn place(&self, member: Option<&str>) -> String {
        let at = member
            .and_then(|m| self.locator.key(m, self.span.0, self.span.1))
            .unwrap_or(self.span.0);
        format!("{}:{}", self.file, self.locator.line(at))
    }

    /// An error about `member` (or the entry) of client `name`.
    fn error(&self, name: &str, member: Option<&str>, message: &str) -> String {
        let member = member.map(|m| format!(", {m}")).unwrap_or_default();
        format!(
            "{}: client {name}{member}: {message}",
            self.place(member_name(&member))
        )
    }

    /// The client the entry declares, or every problem with it.
    pub(super) fn read(
        &self,
        entry: &Value,
        limits: &Limits,
        env: &dyn Environment,
    ) -> Result<DeclaredClient, Vec<String>> {
        let fallback = format!("#{}", self.index + 1);
        let Value::Mapping(map) = entry else {
            return Err(vec![self.error(
                &fallback,
                None,
                &format!("a client is a mapping of its metadata, not {}", kind(entry)),
            )]);
        };
        let name = match map.get("client_id") {
            Some(Value::String(id)) => format!("{id:?}"),
            _ => fallback,
        };
        let mut errors = Vec::new();
        let metadata = read_metadata(map, limits)
            .map_err(|(member, message)| {
                errors.push(self.error(&name, member.as_deref(), &message));
            })
            .ok();
        let secret = read_secret(map, metadata.as_ref(), env)
            .map_err(|message| errors.push(self.error(&name, Some("secret"), &message)))
            .ok();
        match (metadata, secret) {
            (Some(metadata), Some(secret)) if errors.is_empty() => {
                let Some(id) = metadata.client_id.clone() else {
                    return Err(vec![self.error(&name, None, "client_id is required")]);
                };
                Ok(DeclaredClient {
                    id,
                    metadata,
                    secret,
                    place: self.place(None),
                })
            }
            _ => Err(errors),
        }
    }
}

/// An entry's metadata, validated; the error names the member when it can.
fn read_metadata(
    map: &Mapping,
    limits: &Limits,
) -> Result<ClientMetadata, (Option<String>, String)> {
    let mut body = serde_json::Map::new();
    for (key, value) in map {
        let Value::String(key) = key else {
            return Err((None, "a member name is not a string".into()));
        };
        match key.as_str() {
                "secret" => continue,
                "client_secret" => {
                    return Err((
                        Some(key.clone()),
                        format!("a secret is never written in the document; name it with secret: {REFERENCE_FORMS}"),
                    ))
                }
                _ => {}
            }
        if let Some(message) = members::refusal(key) {
            return Err((Some(key.clone()), message));
        }
        let value = serde_json::to_value(value).map_err(|e| (Some(key.clone()), e.to_string()))?;
        body.insert(key.clone(), value);
    }
    if !body.contains_key("client_id") {
        return Err((
            None,
            "client_id is required: apply finds the client by it".into(),
        ));
    }
    let request = members::parse(serde_json::Value::Object(body))
        .map_err(|message| (first_member(&message, map), message))?;
    request
        .validate(limits)
        .map_err(|message| (first_member(&message, map), message))
}

/// An entry's secret: required for the secret methods, refused otherwise.
fn read_secret(
    map: &Mapping,
    metadata: Option<&ClientMetadata>,
    env: &dyn Environment,
) -> Result<Option<(ExistingSecret, SecretRef)>, String> {
    let reference = map.get("secret").map(SecretRef::parse).transpose()?;
    let Some(metadata) = metadata else {
        // The metadata is refused already; still report a bad reference.
        return reference.map_or(Ok(None), |r| r.resolve(env).map(|s| Some((s, r))));
    };
    let method = metadata.auth_method;
    match reference {
        None if method.uses_secret() => Err(format!(
            "{} needs a secret reference: secret: {REFERENCE_FORMS}",
            method.as_str()
        )),
        None => Ok(None),
        Some(_) if !method.uses_secret() => Err(format!(
            "{} authenticates without a secret; remove secret",
            method.as_str()
        )),
        Some(r) => Ok(Some((r.resolve(env)?, r))),
    }
}

fn member_name(member: &str) -> Option<&str> {
    member.strip_prefix(", ")
}

/// The entry's member that a validation message is about: the one named
/// first in the message, or whose name holds the message's first word
/// (`audience …` is about `allowed_audiences`).
fn first_member(message: &str, map: &Mapping) -> Option<String> {
    let keys: Vec<&str> = map.keys().filter_map(Value::as_str).collect();
    let named = keys
        .iter()
        .filter_map(|k| message.find(k).map(|at| (at, *k)))
        .min()
        .map(|(_, k)| k);
    let word = message.split([' ', ':']).next().unwrap_or("");
    named
        .or_else(|| {
            keys.iter()
                .copied()
                .find(|k| !word.is_empty() && k.contains(word))
        })
        .map(str::to_owned)
}
