//! `portcullis client import`: a client with the secret it has at another
//! authorization server, read from an environment variable or a file —
//! never from the command line, where process listings and shell history
//! would keep it.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{ArgGroup, Args};
use secrecy::SecretString;

use super::ClientFields;
use crate::clients::{
    import::{ExistingSecret, ImportRequest},
    RegistrationRequest,
};

/// Where the existing secret, or its hash, is read from (exactly one).
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("existing").required(true).args(["secret_env", "secret_file", "hash_env", "hash_file"])))]
pub struct ImportArgs {
    /// Client id (required: an imported client keeps the client_id its callers use).
    #[arg(long = "id")]
    pub id: String,
    /// Its metadata.
    #[command(flatten)]
    pub fields: ClientFields,
    /// Environment variable holding the secret in clear.
    #[arg(long)]
    pub secret_env: Option<String>,
    /// File holding the secret in clear (one trailing newline is ignored).
    #[arg(long)]
    pub secret_file: Option<PathBuf>,
    /// Environment variable holding the other server's hash (bcrypt,
    /// $pbkdf2-sha256$… or $pbkdf2-sha512$… as Ory Hydra stores it, $argon2id$…).
    #[arg(long)]
    pub hash_env: Option<String>,
    /// File holding the other server's hash.
    #[arg(long)]
    pub hash_file: Option<PathBuf>,
}

impl ImportArgs {
    /// The typed request the registry imports.
    pub fn into_request(self) -> anyhow::Result<ImportRequest> {
        let (secret, source) = if let Some(var) = &self.secret_env {
            let text = from_env(var)?;
            (
                ExistingSecret::Plaintext(SecretString::from(text)),
                format!("env:{var}"),
            )
        } else if let Some(path) = &self.secret_file {
            let text = from_file(path)?;
            (
                ExistingSecret::Plaintext(SecretString::from(text)),
                file_source(path),
            )
        } else if let Some(var) = &self.hash_env {
            (ExistingSecret::Hash(from_env(var)?), format!("env:{var}"))
        } else if let Some(path) = &self.hash_file {
            (ExistingSecret::Hash(from_file(path)?), file_source(path))
        } else {
            anyhow::bail!(
                "give the secret with --secret-env, --secret-file, --hash-env or --hash-file"
            );
        };
        let registration = self.fields.apply_to(RegistrationRequest {
            client_id: Some(self.id),
            ..RegistrationRequest::default()
        })?;
        Ok(ImportRequest {
            registration,
            secret,
            source: format!("cli {source}"),
        })
    }
}

fn from_env(var: &str) -> anyhow::Result<String> {
    let text = std::env::var(var)
        .with_context(|| format!("the environment variable {var} is not set or not UTF-8"))?;
    anyhow::ensure!(!text.is_empty(), "the environment variable {var} is empty");
    Ok(text)
}

fn from_file(path: &Path) -> anyhow::Result<String> {
    let mut text = std::fs::read_to_string(path)
        .with_context(|| format!("could not read {} as UTF-8 text", path.display()))?;
    // Editors and `echo` end files with a newline; it is not part of the secret.
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    anyhow::ensure!(!text.is_empty(), "{} is empty", path.display());
    Ok(text)
}

fn file_source(path: &Path) -> String {
    format!("file:{}", path.display())
}
