//! A declared client's secret, given by reference only: an environment
//! variable or a file (a mounted Kubernetes Secret) holding the secret in
//! clear, or holding another server's hash of it. A document never holds a
//! secret itself: it is meant for Git, where a secret would stay forever.

use std::path::{Path, PathBuf};

use secrecy::SecretString;
use serde_yaml_ng::Value;

use crate::clients::import::ExistingSecret;

/// What the secret reference names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretRef {
    /// `{env: VAR}`: the secret in clear.
    Env(String),
    /// `{file: PATH}`: the secret in clear.
    File(PathBuf),
    /// `{hash_env: VAR}`: another server's hash.
    HashEnv(String),
    /// `{hash_file: PATH}`: another server's hash.
    HashFile(PathBuf),
}

/// How a reference must be written, for messages.
pub const REFERENCE_FORMS: &str = "{env: VAR}, {file: PATH}, {hash_env: VAR} or {hash_file: PATH}";

/// Where references are resolved: the process environment and files, or a
/// stand-in in tests.
pub trait Environment: Sync {
    /// The value of variable `name`, if set and UTF-8.
    fn var(&self, name: &str) -> Option<String>;
    /// The UTF-8 text of the file at `path`, or why it cannot be read.
    fn read(&self, path: &Path) -> Result<String, String>;
}

/// The process's own environment and file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcessEnvironment;

impl Environment for ProcessEnvironment {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }

    fn read(&self, path: &Path) -> Result<String, String> {
        std::fs::read_to_string(path).map_err(|e| e.to_string())
    }
}

impl SecretRef {
    /// Reads the `secret` member's value: a mapping with exactly one of the
    /// reference keys, its value a non-empty string.
    pub fn parse(value: &Value) -> Result<Self, String> {
        let refused = || {
            format!("secret must be a reference, {REFERENCE_FORMS}; a secret is never written in the document")
        };
        let Value::Mapping(map) = value else {
            return Err(refused());
        };
        let mut entries = map.iter();
        let (Some((Value::String(kind), Value::String(target))), None) =
            (entries.next(), entries.next())
        else {
            return Err(refused());
        };
        if target.is_empty() {
            return Err(format!("secret {kind} must not be empty"));
        }
        Ok(match kind.as_str() {
            "env" => Self::Env(target.clone()),
            "file" => Self::File(PathBuf::from(target)),
            "hash_env" => Self::HashEnv(target.clone()),
            "hash_file" => Self::HashFile(PathBuf::from(target)),
            _ => return Err(refused()),
        })
    }

    /// The reference as the audit trail and plan name it (`env:VAR`,
    /// `file:PATH`…), never the secret.
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Self::Env(v) => format!("env:{v}"),
            Self::File(p) => format!("file:{}", p.display()),
            Self::HashEnv(v) => format!("hash_env:{v}"),
            Self::HashFile(p) => format!("hash_file:{}", p.display()),
        }
    }

    /// Reads the secret the reference names, and checks it is importable.
    pub fn resolve(&self, env: &dyn Environment) -> Result<ExistingSecret, String> {
        let secret = match self {
            Self::Env(var) => ExistingSecret::Plaintext(SecretString::from(from_env(env, var)?)),
            Self::File(path) => {
                ExistingSecret::Plaintext(SecretString::from(from_file(env, path)?))
            }
            Self::HashEnv(var) => ExistingSecret::Hash(from_env(env, var)?),
            Self::HashFile(path) => ExistingSecret::Hash(from_file(env, path)?),
        };
        // The message says what is wrong with the secret, never the secret.
        secret
            .check()
            .map_err(|e| format!("secret {}: {e}", self.describe()))?;
        Ok(secret)
    }
}

fn from_env(env: &dyn Environment, var: &str) -> Result<String, String> {
    match env.var(var) {
        None => Err(format!(
            "secret env:{var}: the environment variable {var} is not set or not UTF-8"
        )),
        Some(text) if text.is_empty() => Err(format!(
            "secret env:{var}: the environment variable {var} is empty"
        )),
        Some(text) => Ok(text),
    }
}

fn from_file(env: &dyn Environment, path: &Path) -> Result<String, String> {
    let mut text = env
        .read(path)
        .map_err(|e| format!("secret file {}: cannot be read: {e}", path.display()))?;
    // Editors, `echo` and `kubectl create secret --from-file` may end the
    // file with a newline; it is not part of the secret.
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    if text.is_empty() {
        return Err(format!("secret file {} is empty", path.display()));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Value {
        serde_yaml_ng::from_str(text).unwrap()
    }

    #[test]
    fn each_reference_form_is_read() {
        assert_eq!(
            SecretRef::parse(&yaml("{env: A}")),
            Ok(SecretRef::Env("A".into()))
        );
        assert_eq!(
            SecretRef::parse(&yaml("{hash_file: /run/h}")),
            Ok(SecretRef::HashFile("/run/h".into()))
        );
    }

    #[test]
    fn a_secret_written_inline_or_an_odd_reference_is_refused() {
        for text in [
            "s3cr3t-value-long-enough",
            "{env: A, file: B}",
            "{value: x}",
            "{env: 3}",
            "[a]",
        ] {
            let err = SecretRef::parse(&yaml(text)).unwrap_err();
            assert!(err.contains("must be a reference"), "{text}: {err}");
        }
    }
}
