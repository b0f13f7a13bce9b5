//! [`DbHealth`]: whether the database can be reached, owned in one place so
//! that a database outage costs a request milliseconds, not a pool timeout.
//!
//! Every [`super::Storage`] call runs through [`DbHealth::guard`]:
//!
//! - a **deadline** per call (`database_timeout_ms` on the request path, a
//!   longer one for background writers), after which the call fails with
//!   [`StoreError::Unavailable`];
//! - a **circuit breaker** ([`Breaker`]): after `database_breaker_threshold`
//!   consecutive failures (deadlines, connection errors, the server shutting
//!   down — never `NotFound` or `Conflict`, which are answers) it opens, and
//!   calls fail at once with `Unavailable`. After `database_breaker_open_ms`
//!   one call is let through as a probe (half-open): its success closes the
//!   breaker, its failure opens it again. The background prober
//!   ([`super::Storage::probe`], every second) closes it without traffic.
//!
//! ```text
//!            N consecutive failures              open_for elapsed
//!  Closed ───────────────────────────▶ Open ─────────────────────▶ HalfOpen
//!    ▲                                  ▲                          │  │
//!    │                                  └──────── probe fails ─────┘  │
//!    └────────────────────────── probe (or prober ping) succeeds ─────┘
//! ```
//!
//! It also keeps the time of the last successful contact (on the injected
//! [`Clock`]) and publishes up/down on a [`watch`] channel, for the client
//! cache (serving from memory for at most `outage_grace` after the last
//! contact), `/readyz` and `/metrics`.

use std::{
    future::Future,
    sync::{Mutex, PoisonError},
    time::Duration,
};

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use super::StoreError;
use crate::clock::Clock;

/// How the guard behaves (from the `database_*` and `outage_grace` settings).
#[derive(Clone, Copy, Debug)]
pub struct GuardSettings {
    /// Deadline of a request-path call.
    pub request_deadline: Duration,
    /// Deadline of a background writer's call (audit trail, purges, key checks).
    pub background_deadline: Duration,
    /// Consecutive failures that open the breaker (at least 1).
    pub failure_threshold: u32,
    /// How long the breaker stays open before letting a probe through.
    pub open_for: chrono::Duration,
    /// How long after the last successful contact cached clients may be
    /// served from memory (zero: never, fail closed).
    pub outage_grace: chrono::Duration,
}

impl GuardSettings {
    /// For one-off commands (the CLI): generous deadlines, a breaker that
    /// practically never opens, no serving from memory.
    #[must_use]
    pub fn command() -> Self {
        Self {
            request_deadline: Duration::from_secs(30),
            background_deadline: Duration::from_secs(30),
            failure_threshold: u32::MAX,
            open_for: chrono::Duration::seconds(1),
            outage_grace: chrono::Duration::zero(),
        }
    }
}

/// The breaker's state, as `/metrics` shows it
/// (`portcullis_database_breaker_state`: 0 closed, 1 half-open, 2 open).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// One probe is let through; the others fail at once.
    HalfOpen,
    /// Calls fail at once.
    Open,
}

impl BreakerState {
    /// The gauge value.
    #[must_use]
    pub fn as_gauge(self) -> i64 {
        match self {
            Self::Closed => 0,
            Self::HalfOpen => 1,
            Self::Open => 2,
        }
    }

    /// The name, for logs and `/readyz`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::HalfOpen => "half_open",
            Self::Open => "open",
        }
    }
}

/// What the breaker says to a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Go ahead.
    Pass,
    /// Go ahead as the one probe of a half-open breaker.
    Probe,
    /// Fail at once.
    Reject,
}

/// The circuit breaker state machine; pure, time passed in.
#[derive(Clone, Debug)]
pub struct Breaker {
    threshold: u32,
    open_for: chrono::Duration,
    failures: u32,
    state: BreakerState,
    opened_at: DateTime<Utc>,
}

impl Breaker {
    /// A closed breaker opening after `threshold` consecutive failures, for `open_for`.
    #[must_use]
    pub fn new(threshold: u32, open_for: chrono::Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            open_for,
            failures: 0,
            state: BreakerState::Closed,
            opened_at: DateTime::UNIX_EPOCH,
        }
    }

    /// The state (an open breaker whose time is up reads as open until a
    /// call is admitted as its probe).
    #[must_use]
    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// Whether a call may go ahead at `now`.
    pub fn admit(&mut self, now: DateTime<Utc>) -> Admission {
        match self.state {
            BreakerState::Closed => Admission::Pass,
            BreakerState::Open if now - self.opened_at >= self.open_for => {
                self.state = BreakerState::HalfOpen;
                Admission::Probe
            }
            // Half-open: its one probe is in flight. Should the probe be
            // cancelled (its request dropped), the prober's next ping decides.
            BreakerState::HalfOpen | BreakerState::Open => Admission::Reject,
        }
    }

    /// A call reached the database: close.
    pub fn success(&mut self) {
        self.failures = 0;
        self.state = BreakerState::Closed;
    }

    /// A call failed to reach the database at `now`. Returns whether this
    /// opened the breaker.
    pub fn failure(&mut self, now: DateTime<Utc>) -> bool {
        self.failures = self.failures.saturating_add(1);
        let open = match self.state {
            BreakerState::Closed => self.failures >= self.threshold,
            BreakerState::HalfOpen | BreakerState::Open => true,
        };
        let opened = open && self.state != BreakerState::Open;
        if open {
            self.state = BreakerState::Open;
            self.opened_at = now;
        }
        opened
    }
}

/// Whether the database answered: `Ok` and every error the database itself
/// gave (a missing row, a constraint) count as contact; deadlines, lost
/// connections and a server shutting down or starting up do not.
fn reached(result: Result<(), &StoreError>) -> bool {
    let Err(e) = result else { return true };
    match e {
        StoreError::Unavailable(_) => false,
        StoreError::Backend(e) => !is_connection_error(e),
        _ => true,
    }
}

/// Errors that mean "could not talk to the database", not "the database refused".
pub(super) fn is_connection_error(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        // SQLSTATE classes 08 (connection exception) and 57 (operator
        // intervention: admin shutdown, cannot connect now, crash shutdown).
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57")),
        _ => false,
    }
}

/// The database's reachability: breaker, last contact, up/down.
#[derive(Debug)]
pub struct DbHealth {
    settings: GuardSettings,
    clock: Clock,
    breaker: Mutex<Breaker>,
    last_contact: Mutex<DateTime<Utc>>,
    up: watch::Sender<bool>,
}

impl DbHealth {
    /// Health of a database just connected to (up, contact now).
    #[must_use]
    pub fn new(settings: GuardSettings, clock: Clock) -> Self {
        let now = clock.now();
        Self {
            breaker: Mutex::new(Breaker::new(settings.failure_threshold, settings.open_for)),
            last_contact: Mutex::new(now),
            up: watch::Sender::new(true),
            settings,
            clock,
        }
    }

    /// The settings.
    #[must_use]
    pub fn settings(&self) -> &GuardSettings {
        &self.settings
    }

    /// Whether the database is taken to be reachable (the breaker is closed).
    #[must_use]
    pub fn is_up(&self) -> bool {
        *self.up.borrow()
    }

    /// Up/down changes, for whoever must react to them.
    #[must_use]
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.up.subscribe()
    }

    /// The breaker's state.
    #[must_use]
    pub fn breaker_state(&self) -> BreakerState {
        self.breaker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .state()
    }

    /// When the database last answered.
    #[must_use]
    pub fn last_contact(&self) -> DateTime<Utc> {
        *self
            .last_contact
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// How much longer cached clients may be served from memory at `now`:
    /// `None` when not at all (`outage_grace` 0, or the grace is used up).
    #[must_use]
    pub fn grace_left(&self, now: DateTime<Utc>) -> Option<chrono::Duration> {
        let grace = self.settings.outage_grace;
        let left = grace - (now - self.last_contact());
        (grace > chrono::Duration::zero() && left >= chrono::Duration::zero()).then_some(left)
    }

    /// Runs `call` within `deadline` if the breaker admits it, and records
    /// the outcome. Unreachable-database errors come back as `Unavailable`.
    pub async fn guard<T>(
        &self,
        deadline: Duration,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let admission = self
            .breaker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .admit(self.clock.now());
        if admission == Admission::Reject {
            return Err(StoreError::Unavailable("the database is unreachable"));
        }
        self.run(deadline, call).await
    }

    /// Runs `call` within `deadline` whatever the breaker says (the prober's
    /// ping), and records the outcome.
    pub async fn run<T>(
        &self,
        deadline: Duration,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let result = match tokio::time::timeout(deadline, call).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Unavailable(
                "the database did not answer in time",
            )),
        };
        let outcome = result.as_ref().map(|_| ());
        if reached(outcome) {
            self.contact();
            result
        } else {
            let e = outcome.err();
            self.lost(e);
            match result {
                Err(StoreError::Backend(_)) => {
                    Err(StoreError::Unavailable("the database connection failed"))
                }
                other => other,
            }
        }
    }

    fn contact(&self) {
        let now = self.clock.now();
        {
            let mut last = self
                .last_contact
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            *last = (*last).max(now);
        }
        self.breaker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .success();
        if self.up.send_if_modified(|up| !std::mem::replace(up, true)) {
            tracing::warn!("database reachable again");
        }
    }

    fn lost(&self, cause: Option<&StoreError>) {
        let opened = self
            .breaker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .failure(self.clock.now());
        if opened && self.up.send_if_modified(|up| std::mem::replace(up, false)) {
            tracing::error!(
                error.cause_chain = ?cause,
                "database unreachable: circuit breaker open, failing fast"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap() + chrono::Duration::milliseconds(ms)
    }

    #[test]
    fn the_breaker_opens_after_the_threshold_of_consecutive_failures() {
        let mut b = Breaker::new(3, chrono::Duration::seconds(1));
        assert_eq!(b.admit(t(0)), Admission::Pass);
        assert!(!b.failure(t(0)));
        assert!(!b.failure(t(1)));
        b.success();
        assert!(!b.failure(t(2)), "a success resets the count");
        assert!(!b.failure(t(3)));
        assert!(b.failure(t(4)), "third consecutive failure opens");
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.admit(t(5)), Admission::Reject);
        assert_eq!(
            b.admit(t(1003)),
            Admission::Reject,
            "open for a full second"
        );
    }

    #[test]
    fn a_half_open_breaker_lets_one_probe_through_and_closes_on_its_success() {
        let mut b = Breaker::new(1, chrono::Duration::seconds(1));
        assert!(b.failure(t(0)));
        assert_eq!(b.admit(t(1000)), Admission::Probe);
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert_eq!(b.admit(t(1001)), Admission::Reject, "one probe at a time");
        b.success();
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.admit(t(1002)), Admission::Pass);
    }

    #[test]
    fn a_failed_probe_opens_the_breaker_for_another_period() {
        let mut b = Breaker::new(2, chrono::Duration::seconds(1));
        b.failure(t(0));
        b.failure(t(0));
        assert_eq!(b.admit(t(1500)), Admission::Probe);
        assert!(b.failure(t(1600)), "the probe failed: open again");
        assert_eq!(
            b.admit(t(2500)),
            Admission::Reject,
            "from the probe's failure"
        );
        assert_eq!(b.admit(t(2600)), Admission::Probe);
    }

    #[test]
    fn failures_while_open_keep_it_open_without_reopening() {
        let mut b = Breaker::new(1, chrono::Duration::seconds(1));
        assert!(b.failure(t(0)));
        assert!(!b.failure(t(10)), "already open: not a new opening");
        assert_eq!(b.state(), BreakerState::Open);
        b.success();
        assert_eq!(
            b.state(),
            BreakerState::Closed,
            "the prober's ping closes it"
        );
    }

    #[tokio::test]
    async fn health_tracks_contact_and_grace_on_the_manual_clock() {
        let clock = Clock::manual(t(0));
        let health = DbHealth::new(
            GuardSettings {
                request_deadline: Duration::from_millis(50),
                background_deadline: Duration::from_millis(50),
                failure_threshold: 2,
                open_for: chrono::Duration::seconds(1),
                outage_grace: chrono::Duration::seconds(300),
            },
            clock.clone(),
        );
        let down = || async { Err::<(), _>(StoreError::Backend(sqlx::Error::PoolTimedOut)) };
        let changes = health.subscribe();
        for _ in 0..2 {
            let e = health.guard(Duration::from_millis(50), down()).await;
            assert!(matches!(e, Err(StoreError::Unavailable(_))), "{e:?}");
        }
        assert!(!health.is_up());
        assert!(changes.has_changed().unwrap());
        assert_eq!(health.breaker_state(), BreakerState::Open);
        let rejected = health
            .guard(Duration::from_millis(50), async { Ok(()) })
            .await;
        assert!(
            matches!(rejected, Err(StoreError::Unavailable(_))),
            "open: not run"
        );
        clock.advance(chrono::Duration::seconds(200));
        assert_eq!(
            health.grace_left(clock.now()),
            Some(chrono::Duration::seconds(100))
        );
        clock.advance(chrono::Duration::seconds(101));
        assert_eq!(health.grace_left(clock.now()), None, "grace used up");
        // A deadline is a failure too; `NotFound` is an answer.
        let late = health
            .run(
                Duration::from_millis(10),
                std::future::pending::<Result<(), _>>(),
            )
            .await;
        assert!(matches!(late, Err(StoreError::Unavailable(_))));
        let answer = health
            .run(Duration::from_millis(50), async {
                Err::<(), _>(StoreError::NotFound)
            })
            .await;
        assert!(matches!(answer, Err(StoreError::NotFound)));
        assert!(health.is_up());
        assert_eq!(health.last_contact(), clock.now());
        assert_eq!(health.breaker_state(), BreakerState::Closed);
    }

    #[test]
    fn zero_grace_fails_closed() {
        let clock = Clock::manual(t(0));
        let health = DbHealth::new(
            GuardSettings {
                outage_grace: chrono::Duration::zero(),
                ..GuardSettings::command()
            },
            clock.clone(),
        );
        assert_eq!(health.grace_left(clock.now()), None);
    }
}
