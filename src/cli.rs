//! The command line: `serve`, `migrate`, and `client …`, which manages clients
//! directly in the database (same rules as the admin API) and prints JSON;
//! `keys …`, `audit …` (in `cli/audit.rs`), `federation …` (`cli/federation.rs`),
//! `kek generate` (`cli/kek.rs`), `health` (`cli/health.rs`) and `apply`
//! (`cli/apply.rs`).
//!
//! Help texts are plain text (clap prints doc comments as written), so they
//! do not use Markdown backticks.

// The doc comments here are the --help texts, where backticks would show.
#![allow(clippy::doc_markdown)]

mod apply;
mod audit;
mod client_fields;
mod federation;
mod health;
mod import;
mod kek;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use serde_json::json;

pub use audit::AuditCommand;
pub use client_fields::ClientFields;
pub use federation::FederationCommand;
pub use health::{readyz_url, HealthArgs};
pub use kek::KekCommand;

use crate::{
    audit::{AuditEvent, Auditor},
    clients::{ClientView, RegistrationRequest, Registry},
    clock::Clock,
    config::Settings,
    keys::{self, KekRing, KeyManager},
    startup::Application,
    store::{Storage, Store},
};

/// Where every command's settings come from, shown under each help text.
const SETTINGS_HELP: &str = "Settings: built-in defaults, then the TOML file given with --config \
(or PORTCULLIS_CONFIG), then PORTCULLIS_<KEY> environment variables (PORTCULLIS_LISTEN, \
PORTCULLIS_DATABASE_URL, PORTCULLIS_ADMIN_TOKENS, PORTCULLIS_KEK_FILE, ...), which win. \
portcullis.example.toml and the README's Configuration table list every key.";

/// Portcullis: OAuth 2.0 client-credentials authorization server.
#[derive(Debug, Parser)]
#[command(name = "portcullis", version, about, after_help = SETTINGS_HELP)]
pub struct Cli {
    /// TOML configuration file (also PORTCULLIS_CONFIG).
    #[arg(long, global = true, env = "PORTCULLIS_CONFIG")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
#[command(after_help = SETTINGS_HELP)]
pub enum Command {
    /// Run the server (applies migrations first).
    ///
    /// Listens on listen (PORTCULLIS_LISTEN, default 127.0.0.1:8080) with the
    /// database in database_url (PORTCULLIS_DATABASE_URL, default SQLite under
    /// data/) and the key-encryption key in kek_file (default keys/kek;
    /// generated there for SQLite only, otherwise create it with
    /// portcullis kek generate).
    #[command(after_help = SETTINGS_HELP)]
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Manage clients directly in the database.
    #[command(subcommand)]
    Client(Box<ClientCommand>),
    /// Reconcile clients to a declarative YAML or JSON document ("clients
    /// as code"): create, update, adopt and, with --prune, delete; prints
    /// the plan. Secrets are named by reference (env or file), never inline.
    Apply(apply::ApplyArgs),
    /// Manage signing keys directly in the database.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Work with the audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Create the key-encryption key file (never overwrites one).
    #[command(subcommand)]
    Kek(KekCommand),
    /// Ask a running server's /readyz; exit code 0 when it is ready.
    ///
    /// The container healthcheck: it reads the same settings as serve, so it
    /// asks the configured listen address (loopback for 0.0.0.0).
    Health(HealthArgs),
    /// Manage trusted external token issuers directly in the database.
    #[command(subcommand)]
    Federation(FederationCommand),
}

/// `portcullis keys …`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Show every key with its state and transition times, and the safety signal.
    List,
    /// Promote the published next key now and publish a new one.
    Rotate {
        /// The current key leaked: remove it from the JWKS at once.
        #[arg(long)]
        compromised: bool,
        /// Refuse while verifiers may not have fetched the next key yet.
        #[arg(long)]
        safe: bool,
    },
    /// Re-seal every private key under the primary KEK (after adding a new KEK).
    Rewrap,
}

/// `portcullis client …`
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a client; prints it with its secret (shown once).
    Create {
        /// Client id (a UUID is generated when omitted).
        #[arg(long = "id")]
        id: Option<String>,
        /// Its metadata.
        #[command(flatten)]
        fields: ClientFields,
    },
    /// Register a client with the secret it has at another server (migrating
    /// from Keycloak or Ory Hydra): in clear or as a bcrypt, PBKDF2 or
    /// argon2id hash, read from an environment variable or a file.
    Import(Box<import::ImportArgs>),
    /// List clients, ordered by id.
    List {
        /// Page size (1-200).
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Start after this client id.
        #[arg(long)]
        after: Option<String>,
    },
    /// Show one client.
    Show {
        /// Client id.
        client_id: String,
    },
    /// Change a client; only the given options change.
    Update {
        /// Client id.
        client_id: String,
        /// New values.
        #[command(flatten)]
        fields: ClientFields,
    },
    /// Issue a new secret; the old one stays valid for the grace period.
    RotateSecret {
        /// Client id.
        client_id: String,
        /// Seconds the previous secret stays valid (0 = ends now).
        #[arg(long, default_value_t = 0)]
        grace: i64,
    },
    /// Disable a client (it can no longer obtain tokens).
    Disable {
        /// Client id.
        client_id: String,
    },
    /// Enable a disabled client.
    Enable {
        /// Client id.
        client_id: String,
    },
    /// Revoke every live token of a client (refresh tokens, and access tokens on introspection).
    RevokeTokens {
        /// Client id.
        client_id: String,
    },
    /// Delete a client and its secrets.
    Delete {
        /// Client id.
        client_id: String,
    },
}

/// Runs the parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::load(cli.config.as_deref())?;
    crate::telemetry::init(settings.logging.log_format, &settings.logging.log_level);
    for variable in &settings.ignored_variables {
        tracing::debug!(variable, "ignored a Kubernetes service-link variable");
    }
    match cli.command {
        Command::Serve => {
            Application::build(settings, Clock::System)
                .await?
                .run_until_stopped()
                .await?;
        }
        Command::Migrate => {
            let store = Storage::connect(&settings.database.database_url, 1).await?;
            print(&json!({ "migrated": store.engine() }))?;
        }
        Command::Keys(cmd) => run_keys(&settings, cmd).await?,
        Command::Kek(cmd) => print(&kek::run(&settings, cmd)?)?,
        Command::Health(args) => print(&health::run(&settings, args).await?)?,
        Command::Audit(cmd) => audit::run(&settings, cmd).await?,
        Command::Federation(cmd) => federation::run(&settings, cmd).await?,
        Command::Client(cmd) => run_client(&direct_registry(&settings).await?, *cmd).await?,
        Command::Apply(args) => apply::run(&direct_registry(&settings).await?, args).await?,
    }
    Ok(())
}

/// A registry working on the database directly, auditing as the CLI.
async fn direct_registry(settings: &Settings) -> anyhow::Result<Registry> {
    let store = Storage::connect(&settings.database.database_url, 2).await?;
    let auditor = Auditor::Direct(store.clone());
    Ok(Registry::new(
        store,
        settings
            .tokens
            .client_limits(settings.client_auth.jwks_uri_allow_loopback),
        auditor,
    ))
}

/// An error and its causes on one line, each cause once: a message that
/// already quotes its cause (`… file keys/kek: Permission denied`) is not
/// followed by it again.
#[must_use]
pub fn describe_error(e: &anyhow::Error) -> String {
    let mut message = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !message.contains(&cause) {
            message = format!("{message}: {cause}");
        }
    }
    message
}

/// How the audit trail names changes made with the CLI.
const CLI: &str = "cli";

async fn run_client(registry: &Registry, cmd: ClientCommand) -> anyhow::Result<()> {
    let now = Clock::System.now();
    let out = match cmd {
        ClientCommand::Create { id, fields } => {
            let request = RegistrationRequest {
                client_id: id,
                ..RegistrationRequest::default()
            };
            let (client, secret) = registry.create(CLI, fields.apply_to(request)?, now).await?;
            json!(ClientView::new(&client, secret.as_ref()))
        }
        ClientCommand::Import(args) => {
            let client = registry.import(CLI, args.into_request()?, now).await?;
            json!(ClientView::new(&client, None))
        }
        ClientCommand::List { limit, after } => {
            anyhow::ensure!(
                (1..=200).contains(&limit),
                "--limit must be between 1 and 200"
            );
            let clients = registry.list(after.as_deref(), limit).await?;
            json!(clients
                .iter()
                .map(|c| ClientView::new(c, None))
                .collect::<Vec<_>>())
        }
        ClientCommand::Show { client_id } => {
            json!(ClientView::new(&registry.get(&client_id).await?, None))
        }
        ClientCommand::Update { client_id, fields } => {
            let current = registry.get(&client_id).await?;
            let request = fields.apply_to(RegistrationRequest::from(&current))?;
            json!(ClientView::new(
                &registry.update(CLI, &client_id, request, now).await?,
                None
            ))
        }
        ClientCommand::RotateSecret { client_id, grace } => {
            let (secret, until) = registry.rotate_secret(CLI, &client_id, grace, now).await?;
            json!({ "client_id": client_id, "client_secret": secret.expose(), "previous_secrets_expire_at": until.timestamp() })
        }
        ClientCommand::Disable { client_id } => json!(ClientView::new(
            &registry.set_enabled(CLI, &client_id, false, now).await?,
            None
        )),
        ClientCommand::Enable { client_id } => json!(ClientView::new(
            &registry.set_enabled(CLI, &client_id, true, now).await?,
            None
        )),
        ClientCommand::RevokeTokens { client_id } => {
            let families = registry.revoke_tokens(CLI, &client_id, now).await?;
            json!({ "client_id": client_id, "refresh_token_families_revoked": families })
        }
        ClientCommand::Delete { client_id } => {
            registry.delete(CLI, &client_id, now).await?;
            json!({ "deleted": client_id })
        }
    };
    print(&out)
}

async fn run_keys(settings: &Settings, cmd: KeysCommand) -> anyhow::Result<()> {
    let store = Storage::connect(&settings.database.database_url, 2).await?;
    let now = Clock::System.now();
    let out = match cmd {
        KeysCommand::List => {
            json!(keys::manager::status(&store, &KeyManager::policy(settings), now).await?)
        }
        KeysCommand::Rotate { compromised, safe } => {
            let (ring, _) = KekRing::load(settings)?;
            let store_for_audit = store.clone();
            let manager = KeyManager::start(store, ring, settings, now).await?;
            let report = manager.rotate(now, compromised, safe).await?;
            for w in &report.warnings {
                eprintln!("warning: {w}");
            }
            let kind = if compromised {
                "key_compromised"
            } else {
                "key_rotated"
            };
            let event = AuditEvent::new(kind, CLI, now).details(json!({
                "current": report.current, "next": report.next, "removed": report.removed, "warnings": report.warnings,
            }));
            store_for_audit.append_audit_events(&[event], None).await?;
            json!(report)
        }
        KeysCommand::Rewrap => {
            let (ring, _) = KekRing::load(settings)?;
            let rewrapped = keys::manager::rewrap(&store, &ring).await?;
            let event = AuditEvent::new("keys_rewrapped", CLI, now)
                .details(json!({ "rewrapped": rewrapped, "kek_id": ring.primary().id() }));
            store.append_audit_events(&[event], None).await?;
            json!({ "rewrapped": rewrapped, "kek_id": ring.primary().id() })
        }
    };
    print(&out)
}

fn print(value: &serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
