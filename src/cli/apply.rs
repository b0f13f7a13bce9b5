//! `portcullis apply -f PATH`: reconcile the clients in the database to a
//! declarative document (see `clients::apply`), printing the plan as text
//! or JSON. Changes are audited as actor `cli` with the document's path and
//! digest.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::{
    clients::{
        apply::{read_sources, ApplyError, ApplyOptions, Origin, ProcessEnvironment},
        Registry,
    },
    clock::Clock,
};

/// How the plan is printed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// One line per client and a summary.
    #[default]
    Text,
    /// The plan as JSON (as POST /admin/apply answers).
    Json,
}

/// `portcullis apply …`
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The document: a YAML or JSON file, or a directory whose *.yaml,
    /// *.yml and *.json files are read in name order and merged.
    #[arg(short = 'f', long = "file")]
    pub file: PathBuf,
    /// Print the plan and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Delete the clients that carry the document's owner and that it no
    /// longer names (never clients made by hand or of another owner).
    #[arg(long)]
    pub prune: bool,
    /// text or json.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// Applies the document and prints the plan.
pub async fn run(registry: &Registry, args: ApplyArgs) -> anyhow::Result<()> {
    let sources = read_sources(&args.file).map_err(anyhow::Error::msg)?;
    let origin = Origin {
        file: args.file.display().to_string(),
    };
    let options = ApplyOptions {
        dry_run: args.dry_run,
        prune: args.prune,
    };
    let plan = registry
        .apply_document(
            super::CLI,
            &origin,
            &sources,
            &ProcessEnvironment,
            options,
            Clock::System.now(),
        )
        .await
        .map_err(|e| match e {
            ApplyError::Invalid(problems) => anyhow::anyhow!(
                "the document is refused, nothing was changed ({} problem(s)):\n  {}",
                problems.len(),
                problems.join("\n  ")
            ),
            ApplyError::Conflict(problems) => anyhow::anyhow!(
                "the document conflicts with the registry, nothing was changed:\n  {}",
                problems.join("\n  ")
            ),
            ApplyError::Registry(e) => e.into(),
        })?;
    match args.output {
        Output::Text => println!("{plan}"),
        Output::Json => super::print(&serde_json::to_value(&plan)?)?,
    }
    Ok(())
}
