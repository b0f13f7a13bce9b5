//! The audit trail: how long events are kept (`audit_retention`) and where
//! every committed event is exported for a SIEM (`audit_export`).

use std::path::PathBuf;

use serde::{Deserialize, Deserializer};

use super::ConfigError;

/// Shortest retention accepted (one hour), so a value meant in other units
/// cannot wipe the trail by accident.
const MIN_RETENTION: u64 = 3600;

/// Where committed audit events are exported, one JSON line each.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum AuditExport {
    /// Not exported (`none`, the default).
    #[default]
    None,
    /// To standard output, from the end of the trail at start (`stdout`).
    Stdout,
    /// Appended to this file, resuming after a restart (any other value).
    File(PathBuf),
}

impl<'de> Deserialize<'de> for AuditExport {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Ok(match text.trim() {
            "" | "none" => Self::None,
            "stdout" => Self::Stdout,
            path => Self::File(PathBuf::from(path)),
        })
    }
}

/// Audit retention and export (`audit_retention`, `audit_export`).
#[derive(Clone, Debug, Deserialize)]
pub struct AuditSettings {
    /// Seconds an audit event is kept; older ones are removed behind a
    /// checkpoint. `0` (the default) keeps every event: deleting evidence
    /// must be a deliberate choice, and how long it must be kept is the
    /// operator's (regulator's) decision, not the server's.
    #[serde(default)]
    pub audit_retention: u64,
    /// `none`, `stdout`, or a file path.
    #[serde(default)]
    pub audit_export: AuditExport,
}

impl AuditSettings {
    /// Retention off or at least an hour; the export file's directory exists.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if (1..MIN_RETENTION).contains(&self.audit_retention) {
            return Err(ConfigError::Invalid(format!(
                "audit_retention must be 0 (keep every event) or at least {MIN_RETENTION} seconds"
            )));
        }
        if let AuditExport::File(path) = &self.audit_export {
            let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
            if dir.is_some_and(|d| !d.is_dir()) || path.is_dir() {
                return Err(ConfigError::Invalid(format!(
                    "audit_export {}: not a file in an existing directory",
                    path.display()
                )));
            }
        }
        Ok(())
    }
}
