//! `portcullis federation …`: manage trusted external token issuers
//! directly in the database, with the admin API's rules (validation, audit
//! events recorded as actor `cli`). Bodies are the admin API's JSON.

use std::{io::Read as _, path::PathBuf};

use anyhow::Context as _;
use clap::Subcommand;
use serde_json::json;

use super::{print, CLI};
use crate::{
    audit::Auditor,
    clock::Clock,
    config::Settings,
    federation::{Federation, FederationLimits, FederationRegistry, FederationRequest},
    store::Storage,
};

/// `portcullis federation …`
#[derive(Debug, Subcommand)]
pub enum FederationCommand {
    /// Register a federation from a JSON document (as `POST /admin/federations` takes).
    Create {
        /// The document; `-` reads standard input.
        #[arg(long)]
        file: PathBuf,
    },
    /// Show every federation.
    List,
    /// Show one federation.
    Show {
        /// The federation's id.
        federation_id: String,
    },
    /// Replace a federation with a JSON document (omitted members take their defaults).
    Update {
        /// The federation's id.
        federation_id: String,
        /// The document; `-` reads standard input.
        #[arg(long)]
        file: PathBuf,
    },
    /// Refuse the federation's tokens.
    Disable {
        /// The federation's id.
        federation_id: String,
    },
    /// Accept the federation's tokens again.
    Enable {
        /// The federation's id.
        federation_id: String,
    },
    /// Stop trusting the issuer.
    Delete {
        /// The federation's id.
        federation_id: String,
    },
}

fn read_request(file: &PathBuf) -> anyhow::Result<FederationRequest> {
    let text = if file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        text
    } else {
        std::fs::read_to_string(file).with_context(|| format!("{}", file.display()))?
    };
    serde_json::from_str(&text).context("the federation document is not valid")
}

/// Runs a federation command.
pub async fn run(settings: &Settings, cmd: FederationCommand) -> anyhow::Result<()> {
    let store = Storage::connect(&settings.database.database_url, 2).await?;
    let registry = FederationRegistry::new(
        store.clone(),
        FederationLimits {
            allow_loopback: settings.client_auth.jwks_uri_allow_loopback,
        },
        Auditor::Direct(store),
    );
    let now = Clock::System.now();
    let out = match cmd {
        FederationCommand::Create { file } => registry
            .create(CLI, read_request(&file)?, now)
            .await?
            .view(),
        FederationCommand::List => {
            let all = registry.list().await?;
            json!({ "federations": all.iter().map(Federation::view).collect::<Vec<_>>() })
        }
        FederationCommand::Show { federation_id } => registry.get(&federation_id).await?.view(),
        FederationCommand::Update {
            federation_id,
            file,
        } => registry
            .update(CLI, &federation_id, read_request(&file)?, now)
            .await?
            .view(),
        FederationCommand::Disable { federation_id } => registry
            .set_enabled(CLI, &federation_id, false, now)
            .await?
            .view(),
        FederationCommand::Enable { federation_id } => registry
            .set_enabled(CLI, &federation_id, true, now)
            .await?
            .view(),
        FederationCommand::Delete { federation_id } => {
            registry.delete(CLI, &federation_id, now).await?;
            json!({ "deleted": federation_id })
        }
    };
    print(&out)
}
