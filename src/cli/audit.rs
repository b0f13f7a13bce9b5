//! `portcullis audit …`: verify the stored trail or an exported archive, and
//! export the stored trail as JSON lines.

use std::{
    fs::{File, OpenOptions},
    io::{BufReader, BufWriter},
    path::PathBuf,
};

use anyhow::Context as _;
use clap::Subcommand;
use serde_json::json;

use crate::{
    audit::{self, export, VerifyReport},
    config::Settings,
    store::Storage,
};

/// `portcullis audit …`
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain of the stored trail (from its latest retention
    /// checkpoint, which the report names) or, with --file, of an exported
    /// archive (from its first line); exits non-zero and names the first
    /// broken event.
    Verify {
        /// An archive written by audit_export or portcullis audit export.
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Write the stored trail as JSON lines, the format of audit_export.
    Export {
        /// Only events with a larger id.
        #[arg(long, default_value_t = 0)]
        after: i64,
        /// Write to this new file (never overwritten) instead of standard output.
        #[arg(long)]
        output: Option<PathBuf>,
    },
}

/// Runs an audit command.
pub async fn run(settings: &Settings, cmd: AuditCommand) -> anyhow::Result<()> {
    match cmd {
        AuditCommand::Verify { file: Some(path) } => {
            let archive =
                File::open(&path).with_context(|| format!("could not open {}", path.display()))?;
            finish(&audit::verify_archive(BufReader::new(archive))?)
        }
        AuditCommand::Verify { file: None } => {
            let store = Storage::connect(&settings.database.database_url, 1).await?;
            finish(&audit::verify_store(&store).await?)
        }
        AuditCommand::Export { after, output } => {
            let store = Storage::connect(&settings.database.database_url, 1).await?;
            let Some(path) = output else {
                export::write_trail(&store, after, &mut std::io::stdout()).await?;
                return Ok(());
            };
            let file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .with_context(|| {
                    format!("could not create {} (it must not exist)", path.display())
                })?;
            let (events, last_id) =
                export::write_trail(&store, after, &mut BufWriter::new(file)).await?;
            super::print(&json!({ "exported": events, "last_id": last_id, "output": path }))
        }
    }
}

fn finish(report: &VerifyReport) -> anyhow::Result<()> {
    super::print(&json!(report))?;
    let broken: Vec<String> = [
        report.broken_checkpoint.as_ref().map(|b| {
            format!(
                "the audit checkpoints are broken at checkpoint {}: {}",
                b.id, b.reason
            )
        }),
        report
            .first_broken
            .as_ref()
            .map(|b| format!("the audit trail is broken at event {}: {}", b.id, b.reason)),
    ]
    .into_iter()
    .flatten()
    .collect();
    anyhow::ensure!(broken.is_empty(), broken.join("; "));
    Ok(())
}
