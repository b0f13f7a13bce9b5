//! The local audit journal: where token-path audit events are made durable
//! before the response leaves, and how much disk it may use.

use std::path::PathBuf;

use serde::Deserialize;

use super::ConfigError;

/// The audit journal (`audit_journal_dir`, `audit_journal_max_bytes`).
#[derive(Clone, Debug, Deserialize)]
pub struct JournalSettings {
    /// Directory of the journal (created if missing; one server per directory).
    #[serde(default = "defaults::audit_journal_dir")]
    pub audit_journal_dir: PathBuf,
    /// Most bytes the journal's segment files may hold; when full, no token is issued.
    #[serde(default = "defaults::audit_journal_max_bytes")]
    pub audit_journal_max_bytes: u64,
}

impl JournalSettings {
    /// A non-empty directory and a positive size.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.audit_journal_dir.as_os_str().is_empty() {
            return Err(ConfigError::Invalid(
                "audit_journal_dir must name a directory".to_owned(),
            ));
        }
        if self.audit_journal_max_bytes == 0 {
            return Err(ConfigError::Invalid(
                "audit_journal_max_bytes must be at least 1".to_owned(),
            ));
        }
        Ok(())
    }
}

mod defaults {
    use std::path::PathBuf;

    pub fn audit_journal_dir() -> PathBuf {
        PathBuf::from("data/audit-journal")
    }
    pub fn audit_journal_max_bytes() -> u64 {
        1 << 30
    }
}
