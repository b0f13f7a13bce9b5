//! [`Period`]: the UTC windows token quotas count in, shared by the quota
//! counters and the store that keeps the totals.

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

/// A quota window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Period {
    /// The current UTC hour.
    Hour,
    /// The current UTC day.
    Day,
}

impl Period {
    /// The stored name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hour => "hour",
            Self::Day => "day",
        }
    }

    /// Start of the window containing `t`.
    #[must_use]
    pub fn start(self, t: DateTime<Utc>) -> DateTime<Utc> {
        let len = self.duration();
        t.duration_trunc(len).unwrap_or(t)
    }

    /// The length of the window.
    #[must_use]
    pub fn duration(self) -> TimeDelta {
        match self {
            Self::Hour => TimeDelta::hours(1),
            Self::Day => TimeDelta::days(1),
        }
    }
}
