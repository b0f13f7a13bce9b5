//! Prometheus metrics: counters and histograms updated as requests are
//! served, plus gauges read at scrape time from memory (keys and safety
//! signal as of the last key check, database pool, quota counts).
//!
//! No series is labelled with a client id unless `metrics_client_labels` is
//! on: the endpoint may be public, and client ids would both leak the
//! registry and let the number of series grow with it.

use prometheus_client::{
    encoding::{text::encode, EncodeLabelSet},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

use crate::{
    keys::{manager::KeyStatus, KeyState},
    store::BreakerState,
};

type Labels = Vec<(&'static str, String)>;

/// One label whose value is one of the server's constants (`grant`,
/// `reason`, `limit`, `scheme`, `endpoint`): counting allocates nothing.
type StaticLabel = [(&'static str, &'static str); 1];

/// The labels of `portcullis_http_requests_total`: the route pattern (a
/// constant of the route table, or `unmatched`), the method (`other` for a
/// method RFC 9110 does not define) and the status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    endpoint: &'static str,
    method: &'static str,
    status: u16,
}

fn latency_histogram() -> Histogram {
    Histogram::new([
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    ])
}

/// The metrics updated while serving. Clones share the same counters.
#[derive(Clone)]
pub struct Metrics {
    requests: Family<RequestLabels, Counter>,
    latency: Family<StaticLabel, Histogram, fn() -> Histogram>,
    tokens_issued: Family<StaticLabel, Counter>,
    tokens_denied: Family<StaticLabel, Counter>,
    rate_limited: Family<StaticLabel, Counter>,
    lockouts: Counter,
    secret_verifications: Family<StaticLabel, Counter>,
    tokens_issued_degraded: Counter,
    tls_reload_failures: Counter,
    journal_syncs: Histogram,
    journal_synced_events: Counter,
}

fn sync_histogram() -> Histogram {
    Histogram::new([
        0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
    ])
}

/// The audit journal's state at scrape time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JournalGauges {
    /// Bytes in its segment files.
    pub bytes: u64,
    /// Events durable in the journal, not yet in the database.
    pub pending_events: u64,
    /// Whether it accepts events (room left and the last write succeeded).
    pub writable: bool,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            tokens_issued: Family::default(),
            tokens_denied: Family::default(),
            rate_limited: Family::default(),
            lockouts: Counter::default(),
            secret_verifications: Family::default(),
            journal_syncs: sync_histogram(),
            journal_synced_events: Counter::default(),
            tokens_issued_degraded: Counter::default(),
            tls_reload_failures: Counter::default(),
        }
    }
}

/// Values read at scrape time.
pub struct Scrape<'a> {
    /// The signing-key status.
    pub keys: &'a KeyStatus,
    /// Database pool: open connections and idle ones.
    pub pool: (u32, usize),
    /// Tokens counted against quotas: (client, period, issued).
    pub quota_usage: Vec<(String, &'static str, u64)>,
    /// Whether per-client series carry a `client_id` label (else they are summed).
    pub client_labels: bool,
    /// The audit journal.
    pub audit_journal: JournalGauges,
    /// Whether the database is reachable, and the circuit breaker's state.
    pub database: (bool, BreakerState),
}

impl Metrics {
    /// One request served: `endpoint` is the route pattern.
    pub fn observe_request(
        &self,
        endpoint: &'static str,
        method: &'static str,
        status: u16,
        seconds: f64,
    ) {
        self.requests
            .get_or_create(&RequestLabels {
                endpoint,
                method,
                status,
            })
            .inc();
        self.latency
            .get_or_create(&[("endpoint", endpoint)])
            .observe(seconds);
    }

    /// A token issued by `grant`.
    pub fn token_issued(&self, grant: &'static str) {
        self.tokens_issued.get_or_create(&[("grant", grant)]).inc();
    }

    /// A token request denied with the OAuth error `reason`.
    pub fn token_denied(&self, reason: &'static str) {
        self.tokens_denied
            .get_or_create(&[("reason", reason)])
            .inc();
    }

    /// A request refused by the limit `limit`.
    pub fn rate_limited(&self, limit: &'static str) {
        self.rate_limited.get_or_create(&[("limit", limit)]).inc();
    }

    /// A client locked out.
    pub fn lockout(&self) {
        self.lockouts.inc();
    }

    /// A client-secret check ran, costing at most a check of `scheme`
    /// (`sha256`: generated secrets and unknown clients; `argon2id`,
    /// `bcrypt`, `pbkdf2`: older and imported secrets).
    pub fn secret_verified(&self, scheme: &'static str) {
        self.secret_verifications
            .get_or_create(&[("scheme", scheme)])
            .inc();
    }

    /// Changed TLS certificate files that could not be loaded (the previous
    /// certificate stays in use).
    pub fn tls_reload_failed(&self) {
        self.tls_reload_failures.inc();
    }

    /// A token issued while the database was unavailable (from memory).
    pub fn token_issued_degraded(&self) {
        self.tokens_issued_degraded.inc();
    }

    /// One group commit of the audit journal: `events` made durable by one
    /// write and sync that took `seconds`.
    pub fn audit_journal_synced(&self, seconds: f64, events: usize) {
        self.journal_syncs.observe(seconds);
        self.journal_synced_events.inc_by(events as u64);
    }

    /// Renders everything in the Prometheus text format.
    pub fn render(&self, scrape: &Scrape<'_>) -> Result<String, std::fmt::Error> {
        let mut r = Registry::with_prefix("portcullis");
        r.register(
            "http_requests",
            "HTTP requests by endpoint, method and status",
            self.requests.clone(),
        );
        r.register(
            "http_request_duration_seconds",
            "HTTP request latency by endpoint",
            self.latency.clone(),
        );
        r.register(
            "tokens_issued",
            "Access tokens issued, by grant",
            self.tokens_issued.clone(),
        );
        r.register(
            "tokens_denied",
            "Token requests denied, by OAuth error",
            self.tokens_denied.clone(),
        );
        r.register(
            "rate_limited",
            "Requests refused by a rate limit or quota, by limit",
            self.rate_limited.clone(),
        );
        r.register(
            "lockouts",
            "Clients locked after repeated failed authentication",
            self.lockouts.clone(),
        );
        r.register(
            "secret_verifications",
            "Client-secret checks run, by the costliest hash scheme checked",
            self.secret_verifications.clone(),
        );
        r.register(
            "tls_reload_failures",
            "TLS certificate files that could not be loaded when they changed",
            self.tls_reload_failures.clone(),
        );
        self.register_journal(&mut r, scrape.audit_journal);
        let keys = Family::<Labels, Gauge>::default();
        for state in [KeyState::Next, KeyState::Current, KeyState::Retired] {
            let n = scrape.keys.keys.iter().filter(|k| k.state == state).count();
            keys.get_or_create(&vec![("state", state.as_str().to_owned())])
                .set(n as i64);
        }
        r.register("signing_keys", "Signing keys by lifecycle state", keys);
        gauge(
            &mut r,
            "jwks_consumers_seen",
            "JWKS consumers seen in the last 24 hours",
            scrape.keys.consumers_seen_last_day as i64,
        );
        gauge(
            &mut r,
            "jwks_consumers_missing_next_key",
            "JWKS consumers seen in the last 24 hours whose JWKS lacks the next signing key",
            scrape.keys.consumers_missing_next_key.len() as i64,
        );
        gauge(
            &mut r,
            "next_key_rotation_timestamp_seconds",
            "Earliest time of the next scheduled key rotation (0: none scheduled)",
            scrape.keys.next_rotation_at.map_or(0, |t| t.timestamp()),
        );
        let pool = Family::<Labels, Gauge>::default();
        pool.get_or_create(&vec![("state", "open".to_owned())])
            .set(i64::from(scrape.pool.0));
        pool.get_or_create(&vec![("state", "idle".to_owned())])
            .set(scrape.pool.1 as i64);
        r.register("db_pool_connections", "Database pool connections", pool);
        let usage = Family::<Labels, Gauge>::default();
        for (client, period, issued) in &scrape.quota_usage {
            let mut labels = vec![("period", (*period).to_owned())];
            if scrape.client_labels {
                labels.insert(0, ("client_id", client.clone()));
            }
            usage.get_or_create(&labels).inc_by(*issued as i64);
        }
        r.register(
            "client_tokens_in_quota_window",
            "Tokens issued in the current quota window by clients with a quota (per client with \
             metrics_client_labels)",
            usage,
        );
        self.register_database(&mut r, scrape.database);
        let mut out = String::new();
        encode(&mut out, &r)?;
        Ok(out)
    }
}

impl Metrics {
    /// The audit journal's group commits and gauges.
    fn register_journal(&self, r: &mut Registry, journal: JournalGauges) {
        r.register(
            "audit_journal_sync_seconds",
            "Audit journal group commits (one write and fdatasync each) and their duration",
            self.journal_syncs.clone(),
        );
        r.register(
            "audit_journal_synced_events",
            "Audit events made durable in the journal",
            self.journal_synced_events.clone(),
        );
        gauge(
            r,
            "audit_journal_bytes",
            "Bytes held by the audit journal's segment files",
            journal.bytes as i64,
        );
        gauge(
            r,
            "audit_journal_pending_events",
            "Audit events durable in the journal and not yet in the database",
            journal.pending_events as i64,
        );
        gauge(
                r,
                "audit_journal_writable",
                "1 while the audit journal accepts events; 0 when full or unwritable (no token is issued)",
                i64::from(journal.writable),
            );
    }

    /// Database availability: reachability, breaker, tokens issued from memory.
    fn register_database(&self, r: &mut Registry, (up, breaker): (bool, BreakerState)) {
        gauge(
            r,
            "database_up",
            "Whether the database is reachable (1) or not (0, the circuit breaker is open)",
            i64::from(up),
        );
        gauge(
            r,
            "database_breaker_state",
            "Database circuit breaker: 0 closed, 1 half-open, 2 open",
            breaker.as_gauge(),
        );
        r.register(
            "tokens_issued_degraded",
            "Access tokens issued from memory while the database was unavailable",
            self.tokens_issued_degraded.clone(),
        );
    }
}

fn gauge(r: &mut Registry, name: &str, help: &str, value: i64) {
    let g = Gauge::<i64>::default();
    g.set(value);
    r.register(name, help, g);
}
