//! The hash chain of the audit trail: every event's hash covers the hash of
//! the one before it, so editing or deleting a row breaks the chain at that
//! event (or, for an edit whose hash was recomputed, at the next one).

use chrono::{DateTime, Utc};
use ring::digest;
use serde::{Deserialize, Serialize};

/// The `prev_hash` of the first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An event as stored, and as one line of an export archive.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Position in the chain, from 1, without gaps.
    pub id: i64,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// What happened (`token_issued`, `client_updated`, …).
    pub kind: String,
    /// Who did it: `client:<id>`, `admin:<token fingerprint>`, `cli`, `system`.
    pub actor: String,
    /// The client concerned.
    pub client_id: Option<String>,
    /// The request it happened in.
    pub request_id: Option<String>,
    /// Why (for denials and failures).
    pub reason: Option<String>,
    /// Event-specific JSON (never secrets).
    pub details: serde_json::Value,
    /// Hash of the previous event (the checkpoint's for the first event kept
    /// after a retention cut; empty when the previous event is missing).
    pub prev_hash: String,
    /// Hash of this event.
    pub hash: String,
}

/// The hash of an event's content chained to `prev_hash`: SHA-256 (hex) of a
/// JSON array of every field, so no two different events serialize alike.
#[must_use]
pub fn link(record: &AuditRecord, prev_hash: &str) -> String {
    Content {
        id: record.id,
        occurred_at: record.occurred_at,
        kind: &record.kind,
        actor: &record.actor,
        client_id: record.client_id.as_deref(),
        request_id: record.request_id.as_deref(),
        reason: record.reason.as_deref(),
        details: &record.details,
    }
    .link(prev_hash)
}

/// The hashed fields of an event, borrowed: what [`link`] hashes, for an
/// event not (yet) held as an [`AuditRecord`].
#[derive(Clone, Copy)]
pub struct Content<'a> {
    /// Position in the chain.
    pub id: i64,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// What happened.
    pub kind: &'a str,
    /// Who did it.
    pub actor: &'a str,
    /// The client concerned.
    pub client_id: Option<&'a str>,
    /// The request it happened in.
    pub request_id: Option<&'a str>,
    /// Why.
    pub reason: Option<&'a str>,
    /// Event-specific JSON.
    pub details: &'a serde_json::Value,
}

impl Content<'_> {
    /// The hash of this content chained to `prev_hash` (see [`link`]).
    #[must_use]
    pub fn link(&self, prev_hash: &str) -> String {
        hex(&self.digest(prev_hash))
    }

    /// The SHA-256 of this content chained to `prev_hash`, as bytes: what
    /// [`Self::link`] gives in hex.
    #[must_use]
    pub fn digest(&self, prev_hash: &str) -> [u8; 32] {
        // The details' text first (a `Value` serialises to the bytes of its
        // `Display`), then the array straight from the fields with that text
        // as one of its strings: the same bytes as building the array as a
        // `serde_json::Value`, without the copies.
        let details = serde_json::to_string(self.details).unwrap_or_default();
        let canonical = (
            self.id,
            self.occurred_at.timestamp_micros(),
            self.kind,
            self.actor,
            self.client_id,
            self.request_id,
            self.reason,
            details.as_str(),
            prev_hash,
        );
        let mut text = Vec::with_capacity(details.len() + 384);
        if serde_json::to_writer(&mut text, &canonical).is_err() {
            // Unreachable (strings and integers always serialise); a hash of
            // nothing would only fail verification, never pass it.
            text.clear();
        }
        let mut out = [0; 32];
        out.copy_from_slice(digest::digest(&digest::SHA256, &text).as_ref());
        out
    }
}

/// SHA-256 (lowercase hex) of `text`.
#[must_use]
pub fn sha256_hex(text: &str) -> String {
    hex(digest::digest(&digest::SHA256, text.as_bytes()).as_ref())
}

/// Lowercase hex of `bytes`.
#[must_use]
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

/// Where a chain breaks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Break {
    /// The first event that does not verify (or the id that is missing).
    pub id: i64,
    /// What is wrong there.
    pub reason: &'static str,
}

/// Checks events in id order, continuing from `(last_id, last_hash)`;
/// returns the new end of the chain, or the first break.
pub fn verify(records: &[AuditRecord], last: (i64, &str)) -> Result<(i64, String), Break> {
    let (mut last_id, mut last_hash) = (last.0, last.1.to_owned());
    for r in records {
        if r.id != last_id + 1 {
            return Err(Break {
                id: last_id + 1,
                reason: "event missing (deleted)",
            });
        }
        if r.prev_hash != last_hash {
            return Err(Break {
                id: r.id,
                reason:
                    "previous-hash link does not match (an earlier event was changed or removed)",
            });
        }
        if link(r, &r.prev_hash) != r.hash {
            return Err(Break {
                id: r.id,
                reason: "content does not match its hash (this event, or the hash of the one before it, was changed)",
            });
        }
        last_id = r.id;
        last_hash.clone_from(&r.hash);
    }
    Ok((last_id, last_hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<AuditRecord> {
        let mut prev = GENESIS.to_owned();
        (1..=n)
            .map(|id| {
                let mut r = AuditRecord {
                    id,
                    occurred_at: DateTime::from_timestamp(1_800_000_000 + id, 0).unwrap(),
                    kind: "token_issued".into(),
                    actor: "client:a".into(),
                    client_id: Some("a".into()),
                    request_id: None,
                    reason: None,
                    details: serde_json::json!({"n": id}),
                    prev_hash: prev.clone(),
                    hash: String::new(),
                };
                r.hash = link(&r, &prev);
                prev.clone_from(&r.hash);
                r
            })
            .collect()
    }

    /// The hash as first defined: SHA-256 (hex) of the `Value` array's text.
    fn link_as_defined(record: &AuditRecord, prev_hash: &str) -> String {
        let canonical = serde_json::json!([
            record.id,
            record.occurred_at.timestamp_micros(),
            record.kind,
            record.actor,
            record.client_id,
            record.request_id,
            record.reason,
            record.details.to_string(),
            prev_hash,
        ])
        .to_string();
        let digest = digest::digest(&digest::SHA256, canonical.as_bytes());
        digest.as_ref().iter().fold(String::new(), |mut s, b| {
            use std::fmt::Write as _;
            let _ = write!(s, "{b:02x}");
            s
        })
    }

    #[test]
    fn the_hash_is_the_one_defined() {
        let mut records = chain(3);
        records[1].request_id = Some("r\u{e9}q \"1\"".into());
        records[1].reason = Some("why\n".into());
        records[2].client_id = None;
        records[2].details = serde_json::json!({"b": [1, -2.5, null], "a": {"z": "\u{1f600}"}});
        for r in &records {
            assert_eq!(link(r, &r.prev_hash), link_as_defined(r, &r.prev_hash));
            assert_eq!(link(r, GENESIS), link_as_defined(r, GENESIS));
        }
    }

    #[test]
    fn an_intact_chain_verifies() {
        let c = chain(5);
        assert_eq!(verify(&c, (0, GENESIS)).unwrap().0, 5);
        assert_eq!(
            verify(&c[2..], (2, &c[1].hash)).unwrap().0,
            5,
            "verification resumes"
        );
    }

    #[test]
    fn an_edited_event_breaks_the_chain_at_that_event() {
        let mut c = chain(5);
        c[2].reason = Some("edited".into());
        assert_eq!(verify(&c, (0, GENESIS)).unwrap_err().id, 3);
    }

    #[test]
    fn a_deleted_event_is_found() {
        let mut c = chain(5);
        c.remove(3);
        assert_eq!(
            verify(&c, (0, GENESIS)).unwrap_err(),
            Break {
                id: 4,
                reason: "event missing (deleted)"
            }
        );
        let mut last_gone = chain(5);
        last_gone.remove(0);
        assert_eq!(verify(&last_gone, (0, GENESIS)).unwrap_err().id, 1);
    }

    #[test]
    fn a_rehashed_edit_still_breaks_the_next_link() {
        let mut c = chain(5);
        c[1].details = serde_json::json!({"n": 99});
        c[1].hash = link(&c[1], &c[1].prev_hash);
        assert_eq!(verify(&c, (0, GENESIS)).unwrap_err().id, 3);
    }
}
