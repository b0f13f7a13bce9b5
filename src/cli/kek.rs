//! `portcullis kek generate`: create the key-encryption key file, never
//! overwriting one (losing a KEK loses every signing key it sealed).

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::json;

use crate::{config::Settings, keys::Kek};

/// `portcullis kek …`
#[derive(Debug, Subcommand)]
pub enum KekCommand {
    /// Write a new random KEK (32 bytes, base64) to kek_file, or to --file:
    /// the file is created with mode 0600 and its directory with mode 0700.
    /// Refuses (exit code 1) when the file already exists.
    Generate {
        /// Where to write it instead of kek_file (PORTCULLIS_KEK_FILE, default keys/kek).
        #[arg(long)]
        file: Option<PathBuf>,
    },
}

/// Runs a `kek` command; prints the file and the new KEK's public id.
pub fn run(settings: &Settings, cmd: KekCommand) -> anyhow::Result<serde_json::Value> {
    match cmd {
        KekCommand::Generate { file } => {
            let path = file.unwrap_or_else(|| settings.keys.kek_file.clone());
            let kek = Kek::generate_file(&path)?;
            Ok(json!({ "kek_file": path, "kek_id": kek.id() }))
        }
    }
}
