//! [`Clock`]: the one place the verifier reads the time. Tests (and callers
//! who keep their own notion of time) use [`Clock::manual`].

use std::sync::{
    atomic::{AtomicI64, Ordering},
    Arc,
};

/// Where the verifier reads the current time, in whole seconds since the Unix epoch.
#[derive(Clone, Debug, Default)]
pub enum Clock {
    /// The system's wall clock.
    #[default]
    System,
    /// A clock that moves only when told to (shared by all clones).
    Manual(Arc<AtomicI64>),
}

impl Clock {
    /// A manual clock showing `unix_seconds`.
    #[must_use]
    pub fn manual(unix_seconds: i64) -> Self {
        Self::Manual(Arc::new(AtomicI64::new(unix_seconds)))
    }

    /// Seconds since the Unix epoch.
    #[must_use]
    pub fn now(&self) -> i64 {
        match self {
            #[allow(clippy::disallowed_methods)] // the one place that reads wall time
            Self::System => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64),
            Self::Manual(t) => t.load(Ordering::Relaxed),
        }
    }

    /// Sets a manual clock; does nothing to the system clock.
    pub fn set(&self, unix_seconds: i64) {
        if let Self::Manual(t) = self {
            t.store(unix_seconds, Ordering::Relaxed);
        }
    }

    /// Moves a manual clock by `seconds` (negative goes back); does nothing to the system clock.
    pub fn advance(&self, seconds: i64) {
        if let Self::Manual(t) = self {
            t.fetch_add(seconds, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told_and_is_shared_by_clones() {
        let clock = Clock::manual(1_000);
        let other = clock.clone();
        clock.advance(5);
        assert_eq!(other.now(), 1_005);
        other.set(7);
        assert_eq!(clock.now(), 7);
        assert!(Clock::System.now() > 1_600_000_000);
    }
}
