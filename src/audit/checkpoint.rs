//! Retention checkpoints: where the kept audit trail starts once older events
//! are removed (`audit_retention`).
//!
//! Each cut removes a prefix of the chain and records, in the same
//! transaction, the last removed event's id and hash and how many events were
//! removed in total. Verification then starts at the latest checkpoint
//! instead of the genesis hash: the first kept event must be the next id and
//! must link to the recorded hash, so removing kept events, or editing them,
//! is still found.
//!
//! The checkpoints form a chain of their own (each hashes the previous one's
//! hash), and a healthy trail removes exactly the ids `1..=last_id`, so
//! `removed == last_id`. That detects a checkpoint edited by hand (say, its
//! `last_id` moved forward to hide deleted events) unless the editor also
//! recomputed the hashes. What a checkpoint cannot prove: the content of the
//! removed events (only the exported archive holds those — its line with
//! `id == last_id` must carry `hash == last_hash`), nor anything against
//! someone who can write the database and recompute SHA-256 (no secret
//! key is involved, as for the event chain itself).

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::chain::{self, Break, GENESIS};

/// One retention cut.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Checkpoint {
    /// Position in the checkpoint chain, from 1.
    pub id: i64,
    /// When the cut was made.
    pub cut_at: DateTime<Utc>,
    /// The last removed event.
    pub last_id: i64,
    /// Its hash: the first kept event links to it.
    pub last_hash: String,
    /// Events removed by this and every earlier cut.
    pub removed: i64,
    /// The previous checkpoint's hash (the genesis hash for the first).
    pub prev_hash: String,
    /// Hash of this checkpoint.
    pub hash: String,
}

impl Checkpoint {
    /// The checkpoint that follows `prev` after removing `removed_now`
    /// events, up to and including `(last_id, last_hash)`.
    #[must_use]
    pub fn after(
        prev: Option<&Checkpoint>,
        cut_at: DateTime<Utc>,
        (last_id, last_hash): (i64, &str),
        removed_now: i64,
    ) -> Self {
        let mut c = Self {
            id: prev.map_or(1, |p| p.id + 1),
            cut_at,
            last_id,
            last_hash: last_hash.to_owned(),
            removed: prev.map_or(0, |p| p.removed) + removed_now,
            prev_hash: prev.map_or(GENESIS, |p| p.hash.as_str()).to_owned(),
            hash: String::new(),
        };
        c.hash = c.link(&c.prev_hash);
        c
    }

    /// SHA-256 (hex) of a JSON array of every field, chained to `prev_hash`.
    #[must_use]
    pub fn link(&self, prev_hash: &str) -> String {
        chain::sha256_hex(
            &serde_json::json!([
                "checkpoint",
                self.id,
                self.cut_at.timestamp_micros(),
                self.last_id,
                self.last_hash,
                self.removed,
                prev_hash,
            ])
            .to_string(),
        )
    }
}

/// Checks the kept checkpoints in order (the first one's predecessor may
/// have been pruned); the break names the checkpoint id.
pub fn verify(checkpoints: &[Checkpoint]) -> Result<(), Break> {
    let broken = |id, reason| Err(Break { id, reason });
    for (i, c) in checkpoints.iter().enumerate() {
        if c.link(&c.prev_hash) != c.hash {
            return broken(c.id, "checkpoint does not match its hash (edited)");
        }
        if c.removed != c.last_id {
            return broken(
                c.id,
                "checkpoint's removed count does not match its last id (events missing or checkpoint edited)",
            );
        }
        let Some(prev) = i.checked_sub(1).and_then(|p| checkpoints.get(p)) else {
            continue;
        };
        if c.id != prev.id + 1 || c.prev_hash != prev.hash || c.last_id <= prev.last_id {
            return broken(
                c.id,
                "checkpoint does not follow the one before it (removed or edited)",
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cuts(n: i64) -> Vec<Checkpoint> {
        let t = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let mut out: Vec<Checkpoint> = Vec::new();
        for i in 1..=n {
            let hash = format!("{i:064}");
            let next = Checkpoint::after(out.last(), t, (i * 10, &hash), 10);
            out.push(next);
        }
        out
    }

    #[test]
    fn checkpoints_chain_and_count_what_they_removed() {
        let c = cuts(3);
        assert_eq!((c[2].id, c[2].last_id, c[2].removed), (3, 30, 30));
        assert_eq!(c[0].prev_hash, GENESIS);
        assert_eq!(verify(&c), Ok(()));
        assert_eq!(verify(&c[1..]), Ok(()), "the oldest may have been pruned");
    }

    #[test]
    fn an_edited_removed_or_forged_checkpoint_is_found() {
        let mut moved = cuts(3);
        moved[1].last_id = 25;
        assert_eq!(verify(&moved).unwrap_err().id, 2);

        let mut gone = cuts(3);
        gone.remove(1);
        assert_eq!(verify(&gone).unwrap_err().id, 3);

        let mut forged = cuts(3);
        forged[2].last_id = 40;
        forged[2].hash = forged[2].link(&forged[2].prev_hash);
        assert_eq!(
            verify(&forged).unwrap_err().id,
            3,
            "removed count no longer matches"
        );
    }
}
