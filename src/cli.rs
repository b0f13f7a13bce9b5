//! The command line: `serve`, `migrate`, and `client …`, which manages clients
//! directly in the database (same rules as the admin API) and prints JSON;
//! `keys …`, `audit …` (in `cli/audit.rs`), `federation …` (`cli/federation.rs`),
//! `kek generate` (`cli/kek.rs`) and `health` (`cli/health.rs`).
//!
//! Help texts are plain text (clap prints doc comments as written), so they
//! do not use Markdown backticks.

// The doc comments here are the --help texts, where backticks would show.
#![allow(clippy::doc_markdown)]

mod audit;
mod federation;
mod health;
mod import;
mod kek;

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use serde_json::json;

pub use audit::AuditCommand;
pub use federation::FederationCommand;
pub use health::{readyz_url, HealthArgs};
pub use kek::KekCommand;

use crate::{
    audit::{AuditEvent, Auditor},
    clients::{whole::WholeNumber, ClientView, RegistrationRequest, Registry},
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

/// Client metadata options shared by `create` and `update`.
#[derive(Debug, Args)]
pub struct ClientFields {
    /// Human-readable name.
    #[arg(long)]
    name: Option<String>,
    /// Allowed scopes, space-separated.
    #[arg(long)]
    scope: Option<String>,
    /// Allowed audience (repeat for several).
    #[arg(long = "audience")]
    audiences: Vec<String>,
    /// Default audience.
    #[arg(long)]
    default_audience: Option<String>,
    /// Access-token lifetime in seconds.
    #[arg(long)]
    ttl: Option<i64>,
    /// client_secret_basic (default), client_secret_post, private_key_jwt,
    /// tls_client_auth or self_signed_tls_client_auth.
    #[arg(long)]
    auth_method: Option<String>,
    /// File holding the client's public JWK set ({"keys": [...]}).
    #[arg(long)]
    jwks_file: Option<PathBuf>,
    /// URL of the client's JWK set.
    #[arg(long)]
    jwks_uri: Option<String>,
    /// private_key_jwt: the one algorithm its assertions must use.
    #[arg(long)]
    signing_alg: Option<String>,
    /// tls_client_auth: the certificate's subject DN (RFC 4514).
    #[arg(long)]
    tls_subject_dn: Option<String>,
    /// tls_client_auth: a DNS name SAN of the certificate.
    #[arg(long)]
    tls_san_dns: Option<String>,
    /// tls_client_auth: a URI SAN of the certificate (a SPIFFE ID, say).
    #[arg(long)]
    tls_san_uri: Option<String>,
    /// tls_client_auth: an IP address SAN of the certificate.
    #[arg(long)]
    tls_san_ip: Option<String>,
    /// tls_client_auth: an e-mail SAN of the certificate.
    #[arg(long)]
    tls_san_email: Option<String>,
    /// Bind access tokens to the client's certificate (true or false).
    #[arg(long)]
    certificate_bound_tokens: Option<bool>,
    /// Require DPoP proofs: access tokens bound to the client's DPoP key (true or false).
    #[arg(long)]
    dpop_bound_tokens: Option<bool>,
    /// Grant type (repeat for several): client_credentials (default), refresh_token.
    #[arg(long = "grant-type")]
    grant_types: Vec<String>,
    /// Allow (true) or forbid (false) calling the introspection endpoint.
    #[arg(long)]
    allow_introspection: Option<bool>,
}

impl ClientFields {
    pub(crate) fn apply_to(
        self,
        mut r: RegistrationRequest,
    ) -> anyhow::Result<RegistrationRequest> {
        // A new method starts without the old one's keys and certificate subject.
        if self.auth_method.is_some() && self.auth_method != r.token_endpoint_auth_method {
            r.jwks = None;
            r.jwks_uri = None;
            r.token_endpoint_auth_signing_alg = None;
            r.tls_client_auth_subject_dn = None;
            r.tls_client_auth_san_dns = None;
            r.tls_client_auth_san_uri = None;
            r.tls_client_auth_san_ip = None;
            r.tls_client_auth_san_email = None;
        }
        r.token_endpoint_auth_signing_alg = self.signing_alg.or(r.token_endpoint_auth_signing_alg);
        if let Some(path) = &self.jwks_file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("could not read {}", path.display()))?;
            r.jwks = Some(
                serde_json::from_str(&text)
                    .with_context(|| format!("{} is not JSON", path.display()))?,
            );
            r.jwks_uri = None;
        }
        if self.jwks_uri.is_some() {
            r.jwks_uri = self.jwks_uri;
            r.jwks = None;
        }
        let subjects = [
            self.tls_subject_dn,
            self.tls_san_dns,
            self.tls_san_uri,
            self.tls_san_ip,
            self.tls_san_email,
        ];
        if subjects.iter().any(Option::is_some) {
            let [dn, dns, uri, ip, email] = subjects;
            r.tls_client_auth_subject_dn = dn;
            r.tls_client_auth_san_dns = dns;
            r.tls_client_auth_san_uri = uri;
            r.tls_client_auth_san_ip = ip;
            r.tls_client_auth_san_email = email;
        }
        r.tls_client_certificate_bound_access_tokens = self
            .certificate_bound_tokens
            .or(r.tls_client_certificate_bound_access_tokens);
        r.dpop_bound_access_tokens = self.dpop_bound_tokens.or(r.dpop_bound_access_tokens);
        r.client_name = self.name.or(r.client_name);
        r.scope = self.scope.or(r.scope);
        if !self.audiences.is_empty() {
            r.allowed_audiences = Some(self.audiences);
        }
        r.default_audience = self.default_audience.or(r.default_audience);
        r.access_token_ttl = self.ttl.map(WholeNumber).or(r.access_token_ttl);
        r.token_endpoint_auth_method = self.auth_method.or(r.token_endpoint_auth_method);
        if !self.grant_types.is_empty() {
            r.grant_types = Some(self.grant_types);
        }
        r.allow_introspection = self.allow_introspection.or(r.allow_introspection);
        Ok(r)
    }
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
        Command::Client(cmd) => {
            let store = Storage::connect(&settings.database.database_url, 2).await?;
            let auditor = Auditor::Direct(store.clone());
            run_client(
                &Registry::new(
                    store,
                    settings
                        .tokens
                        .client_limits(settings.client_auth.jwks_uri_allow_loopback),
                    auditor,
                ),
                *cmd,
            )
            .await?;
        }
    }
    Ok(())
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
