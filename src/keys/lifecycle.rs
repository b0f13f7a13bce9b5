//! The signing-key lifecycle as a pure function: given the stored keys, the
//! policy and `now`, which changes are due. No I/O and no clock here, so the
//! rules are unit-tested directly and tests can run weeks of rotations.
//!
//! ```text
//!  next ──(published ≥ prepublish, current served ≥ interval)──▶ current ──▶ retired ──(max token lifetime + skew)──▶ removed
//! ```
//! A `next` key is published in the JWKS before it signs; the `current` key
//! signs; a `retired` key stays published (without its private part) until
//! every token it signed has expired.

use chrono::{DateTime, Duration, Utc};

use super::{Algorithm, KeyState, StoredKey};

/// The rotation rules in force.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Algorithm of new keys.
    pub alg: Algorithm,
    /// How long a key signs before a scheduled rotation; `None` disables them.
    pub rotation_interval: Option<Duration>,
    /// Minimum publication time of a `next` key before a scheduled rotation promotes it.
    pub prepublish: Duration,
    /// How long a retired key stays published.
    pub retention: Duration,
}

/// Why keys are being changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// The periodic check: bootstrap, retention, rotation when due.
    Scheduled,
    /// An operator's rotation: promote the published `next` key now.
    Manual,
    /// The current key is compromised: remove it from the JWKS at once.
    Compromised,
}

/// One change to the stored keys, applied in order in one transaction.
#[derive(Clone, Debug)]
pub enum KeyChange {
    /// Store a new key.
    Insert(StoredKey),
    /// `current` → `retired`; the private part is destroyed.
    Retire {
        /// The key.
        kid: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// `next` → `current`.
    Promote {
        /// The key.
        kid: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// Remove the key (from the JWKS, with its private part).
    Remove {
        /// The key.
        kid: String,
    },
    /// Replace the sealed private part (KEK rotation).
    Reseal {
        /// The key.
        kid: String,
        /// The newly sealed private key.
        sealed: Vec<u8>,
        /// The KEK that sealed it.
        kek_id: String,
    },
}

impl KeyChange {
    /// The audit-trail kind of the change and the key it concerns.
    #[must_use]
    pub fn summary(&self) -> (&'static str, &str) {
        match self {
            Self::Insert(k) => ("key_published", &k.kid),
            Self::Promote { kid, .. } => ("key_activated", kid),
            Self::Retire { kid, .. } => ("key_retired", kid),
            Self::Remove { kid } => ("key_removed", kid),
            Self::Reseal { kid, .. } => ("key_rewrapped", kid),
        }
    }
}

/// When the next scheduled rotation may happen: the current key has served
/// its interval and the next key has been published long enough.
#[must_use]
pub fn next_rotation_at(keys: &[StoredKey], policy: &Policy) -> Option<DateTime<Utc>> {
    let interval = policy.rotation_interval?;
    let current = find(keys, KeyState::Current)?;
    let served = current.activated_at.unwrap_or(current.created_at) + interval;
    let published = find(keys, KeyState::Next).map_or(served, |n| n.created_at + policy.prepublish);
    Some(served.max(published))
}

/// When a retired key leaves the JWKS.
#[must_use]
pub fn removal_at(key: &StoredKey, policy: &Policy) -> Option<DateTime<Utc>> {
    (key.state == KeyState::Retired)
        .then(|| key.retired_at.unwrap_or(key.created_at) + policy.retention)
}

/// The changes due at `now`. `new_key(state)` generates and seals a key.
pub fn plan<E>(
    keys: &[StoredKey],
    policy: &Policy,
    trigger: Trigger,
    now: DateTime<Utc>,
    mut new_key: impl FnMut(KeyState) -> Result<StoredKey, E>,
) -> Result<Vec<KeyChange>, E> {
    let mut changes: Vec<KeyChange> = keys
        .iter()
        .filter(|k| removal_at(k, policy).is_some_and(|t| t <= now))
        .map(|k| KeyChange::Remove { kid: k.kid.clone() })
        .collect();
    let current = find(keys, KeyState::Current);
    let mut next = find(keys, KeyState::Next);
    // A second `next` (only if someone edited the table) is dropped: it never signed.
    for extra in keys.iter().filter(|k| {
        k.state == KeyState::Next && Some(k.kid.as_str()) != next.map(|n| n.kid.as_str())
    }) {
        changes.push(KeyChange::Remove {
            kid: extra.kid.clone(),
        });
    }
    // A changed algorithm takes effect through the next key, published anew.
    if let Some(n) = next.filter(|n| n.alg != policy.alg) {
        changes.push(KeyChange::Remove { kid: n.kid.clone() });
        next = None;
    }
    let promote = match (trigger, current, next) {
        (Trigger::Scheduled, Some(_), Some(_)) => {
            next_rotation_at(keys, policy).is_some_and(|t| t <= now)
        }
        (Trigger::Manual | Trigger::Compromised, Some(_), Some(_)) => true,
        _ => false,
    };
    match (current, next) {
        (Some(c), Some(n)) if promote => {
            changes.push(if trigger == Trigger::Compromised {
                KeyChange::Remove { kid: c.kid.clone() }
            } else {
                KeyChange::Retire {
                    kid: c.kid.clone(),
                    at: now,
                }
            });
            changes.push(KeyChange::Promote {
                kid: n.kid.clone(),
                at: now,
            });
            next = None;
        }
        (Some(c), None) if trigger == Trigger::Compromised => {
            // No published successor: the replacement signs unpublished until
            // verifiers refresh — the unavoidable cost of an emergency.
            changes.push(KeyChange::Remove { kid: c.kid.clone() });
            changes.push(KeyChange::Insert(new_key(KeyState::Current)?));
        }
        (None, _) => changes.push(KeyChange::Insert(new_key(KeyState::Current)?)),
        _ => {}
    }
    if next.is_none() {
        changes.push(KeyChange::Insert(new_key(KeyState::Next)?));
    }
    Ok(changes)
}

fn find(keys: &[StoredKey], state: KeyState) -> Option<&StoredKey> {
    keys.iter()
        .filter(|k| k.state == state)
        .min_by_key(|k| (k.created_at, k.kid.clone()))
}

/// Applies `changes` to an in-memory copy of the keys (what the store does in SQL).
#[must_use]
pub fn apply(keys: &[StoredKey], changes: &[KeyChange]) -> Vec<StoredKey> {
    let mut keys = keys.to_vec();
    for change in changes {
        match change {
            KeyChange::Insert(k) => keys.push(k.clone()),
            KeyChange::Retire { kid, at } => {
                if let Some(k) = keys.iter_mut().find(|k| &k.kid == kid) {
                    k.state = KeyState::Retired;
                    k.retired_at = Some(*at);
                    k.sealed_private_key = None;
                    k.kek_id = None;
                }
            }
            KeyChange::Promote { kid, at } => {
                if let Some(k) = keys.iter_mut().find(|k| &k.kid == kid) {
                    k.state = KeyState::Current;
                    k.activated_at = Some(*at);
                }
            }
            KeyChange::Remove { kid } => keys.retain(|k| &k.kid != kid),
            KeyChange::Reseal {
                kid,
                sealed,
                kek_id,
            } => {
                if let Some(k) = keys.iter_mut().find(|k| &k.kid == kid) {
                    k.sealed_private_key = Some(sealed.clone());
                    k.kek_id = Some(kek_id.clone());
                }
            }
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn policy() -> Policy {
        Policy {
            alg: Algorithm::Es256,
            rotation_interval: Some(Duration::hours(24)),
            prepublish: Duration::hours(2),
            retention: Duration::seconds(3660),
        }
    }

    fn run(
        keys: &[StoredKey],
        policy: &Policy,
        trigger: Trigger,
        now: DateTime<Utc>,
    ) -> Vec<StoredKey> {
        let mut n = 0;
        let changes = plan(keys, policy, trigger, now, |state| {
            n += 1;
            Ok::<_, ()>(StoredKey {
                kid: format!("k{}-{n}", now.timestamp()),
                alg: policy.alg,
                state,
                public_jwk: "{}".into(),
                sealed_private_key: Some(vec![1]),
                kek_id: Some("kek".into()),
                created_at: now,
                activated_at: (state == KeyState::Current).then_some(now),
                retired_at: None,
            })
        })
        .unwrap();
        apply(keys, &changes)
    }

    fn states(keys: &[StoredKey]) -> Vec<KeyState> {
        let mut s: Vec<_> = keys.iter().map(|k| k.state).collect();
        s.sort_by_key(|s| s.as_str());
        s
    }

    fn kid(keys: &[StoredKey], state: KeyState) -> String {
        keys.iter().find(|k| k.state == state).unwrap().kid.clone()
    }

    #[test]
    fn bootstrap_creates_a_current_and_a_published_next_key() {
        let keys = run(&[], &policy(), Trigger::Scheduled, t(0));
        assert_eq!(states(&keys), [KeyState::Current, KeyState::Next]);
        assert!(
            plan(&keys, &policy(), Trigger::Scheduled, t(1), |_| Err(()))
                .unwrap()
                .is_empty(),
            "stable"
        );
    }

    #[test]
    fn scheduled_rotation_waits_for_the_interval_then_promotes_the_next_key() {
        let keys = run(&[], &policy(), Trigger::Scheduled, t(0));
        let next = kid(&keys, KeyState::Next);
        let same = run(&keys, &policy(), Trigger::Scheduled, t(24 * 3600 - 1));
        assert_eq!(kid(&same, KeyState::Next), next, "not yet due");
        let rotated = run(&keys, &policy(), Trigger::Scheduled, t(24 * 3600));
        assert_eq!(kid(&rotated, KeyState::Current), next);
        assert_eq!(
            states(&rotated),
            [KeyState::Current, KeyState::Next, KeyState::Retired]
        );
        let retired = rotated
            .iter()
            .find(|k| k.state == KeyState::Retired)
            .unwrap();
        assert!(
            retired.sealed_private_key.is_none(),
            "a retired key keeps no private part"
        );
    }

    #[test]
    fn retired_keys_are_removed_after_token_lifetime_plus_skew() {
        let keys = run(
            &run(&[], &policy(), Trigger::Scheduled, t(0)),
            &policy(),
            Trigger::Manual,
            t(10),
        );
        assert_eq!(
            run(&keys, &policy(), Trigger::Scheduled, t(10 + 3659)).len(),
            3
        );
        let later = run(&keys, &policy(), Trigger::Scheduled, t(10 + 3660));
        assert_eq!(states(&later), [KeyState::Current, KeyState::Next]);
    }

    #[test]
    fn a_next_key_younger_than_prepublish_is_not_promoted_by_schedule() {
        // The current key has served its interval at 24 h, but an algorithm
        // change at 23 h published a new next key: it signs only once it has
        // been published for the full 2 h, at 25 h.
        let keys = run(&[], &policy(), Trigger::Scheduled, t(0));
        let p = Policy {
            alg: Algorithm::EdDsa,
            ..policy()
        };
        let keys = run(&keys, &p, Trigger::Scheduled, t(23 * 3600));
        let next = kid(&keys, KeyState::Next);
        assert_eq!(next_rotation_at(&keys, &p), Some(t(25 * 3600)));
        for at in [24 * 3600, 25 * 3600 - 1] {
            let same = run(&keys, &p, Trigger::Scheduled, t(at));
            assert_eq!(kid(&same, KeyState::Next), next, "not yet due at {at}");
            assert_eq!(same.len(), 2);
        }
        let rotated = run(&keys, &p, Trigger::Scheduled, t(25 * 3600));
        assert_eq!(kid(&rotated, KeyState::Current), next);
    }

    #[test]
    fn the_rotation_is_due_when_both_the_interval_and_the_prepublication_have_passed() {
        let p = policy();
        let keys = run(&[], &p, Trigger::Scheduled, t(0));
        // Next key published long before the interval ends: the interval decides.
        assert_eq!(next_rotation_at(&keys, &p), Some(t(24 * 3600)));
        let mut late = keys.clone();
        for k in &mut late {
            if k.state == KeyState::Next {
                k.created_at = t(23 * 3600);
            }
        }
        // Published 1 h before the interval ends: the prepublication decides.
        assert_eq!(next_rotation_at(&late, &p), Some(t(25 * 3600)));
        // Without a next key the interval alone decides; without rotation, never.
        let alone: Vec<_> = keys
            .iter()
            .filter(|k| k.state == KeyState::Current)
            .cloned()
            .collect();
        assert_eq!(next_rotation_at(&alone, &p), Some(t(24 * 3600)));
        let off = Policy {
            rotation_interval: None,
            ..policy()
        };
        assert_eq!(next_rotation_at(&keys, &off), None);
        assert_eq!(next_rotation_at(&late[..0], &p), None, "no current key");
    }

    #[test]
    fn compromised_rotation_removes_the_current_key_at_once() {
        let keys = run(&[], &policy(), Trigger::Scheduled, t(0));
        let (old, next) = (kid(&keys, KeyState::Current), kid(&keys, KeyState::Next));
        let after = run(&keys, &policy(), Trigger::Compromised, t(5));
        assert!(
            after.iter().all(|k| k.kid != old),
            "compromised key unpublished"
        );
        assert_eq!(kid(&after, KeyState::Current), next);
        assert_eq!(states(&after), [KeyState::Current, KeyState::Next]);
    }

    #[test]
    fn a_compromised_key_without_a_published_successor_is_replaced_at_once() {
        // An algorithm change removed the next key; then the current key is compromised.
        let keys = run(&[], &policy(), Trigger::Scheduled, t(0));
        let old = kid(&keys, KeyState::Current);
        let p = Policy {
            alg: Algorithm::EdDsa,
            ..policy()
        };
        assert!(
            plan(&keys, &p, Trigger::Scheduled, t(60), |_| Err(())).is_err(),
            "a new next key is due"
        );
        let without_next: Vec<_> = keys
            .iter()
            .filter(|k| k.state == KeyState::Current)
            .cloned()
            .collect();
        let after = run(&without_next, &p, Trigger::Compromised, t(60));
        assert!(
            after.iter().all(|k| k.kid != old),
            "compromised key removed"
        );
        assert_eq!(states(&after), [KeyState::Current, KeyState::Next]);
        assert!(after.iter().all(|k| k.alg == Algorithm::EdDsa));
        // A scheduled check in the same state keeps the current key.
        let scheduled = run(&without_next, &p, Trigger::Scheduled, t(60));
        assert_eq!(kid(&scheduled, KeyState::Current), old);
    }

    #[test]
    fn each_change_names_its_audit_kind_and_key() {
        let keys = run(&[], &policy(), Trigger::Scheduled, t(0));
        let key = keys[0].clone();
        let kid = key.kid.clone();
        let changes = [
            KeyChange::Insert(key),
            KeyChange::Promote {
                kid: kid.clone(),
                at: t(1),
            },
            KeyChange::Retire {
                kid: kid.clone(),
                at: t(1),
            },
            KeyChange::Remove { kid: kid.clone() },
            KeyChange::Reseal {
                kid: kid.clone(),
                sealed: vec![2],
                kek_id: "kek2".into(),
            },
        ];
        let kinds: Vec<_> = changes.iter().map(KeyChange::summary).collect();
        assert_eq!(
            kinds,
            [
                ("key_published", kid.as_str()),
                ("key_activated", kid.as_str()),
                ("key_retired", kid.as_str()),
                ("key_removed", kid.as_str()),
                ("key_rewrapped", kid.as_str()),
            ]
        );
    }

    #[test]
    fn a_reseal_replaces_only_the_named_keys_sealed_part() {
        let keys = run(&[], &policy(), Trigger::Scheduled, t(0));
        let current = kid(&keys, KeyState::Current);
        let resealed = apply(
            &keys,
            &[KeyChange::Reseal {
                kid: current.clone(),
                sealed: vec![9],
                kek_id: "kek2".into(),
            }],
        );
        for k in &resealed {
            let (sealed, kek) = if k.kid == current {
                (vec![9], "kek2")
            } else {
                (vec![1], "kek")
            };
            assert_eq!(k.sealed_private_key.as_deref(), Some(sealed.as_slice()));
            assert_eq!(k.kek_id.as_deref(), Some(kek));
        }
    }

    #[test]
    fn a_changed_algorithm_republishes_the_next_key() {
        let keys = run(&[], &policy(), Trigger::Scheduled, t(0));
        let p = Policy {
            alg: Algorithm::EdDsa,
            ..policy()
        };
        let after = run(&keys, &p, Trigger::Scheduled, t(60));
        let next = after.iter().find(|k| k.state == KeyState::Next).unwrap();
        assert_eq!(next.alg, Algorithm::EdDsa);
        assert_eq!(
            next.created_at,
            t(60),
            "published anew, so it waits the full prepublish window"
        );
        assert_eq!(next_rotation_at(&after, &p), Some(t(24 * 3600)));
    }

    #[test]
    fn weeks_of_scheduled_rotation_keep_one_current_and_one_next() {
        let p = policy();
        let mut keys = run(&[], &p, Trigger::Scheduled, t(0));
        let mut currents = std::collections::HashSet::new();
        for hour in 1..=24 * 21 {
            keys = run(&keys, &p, Trigger::Scheduled, t(hour * 3600));
            assert_eq!(
                keys.iter().filter(|k| k.state == KeyState::Current).count(),
                1
            );
            assert_eq!(keys.iter().filter(|k| k.state == KeyState::Next).count(), 1);
            assert!(keys.len() <= 3);
            currents.insert(kid(&keys, KeyState::Current));
        }
        assert_eq!(currents.len(), 22, "one rotation a day for three weeks");
    }

    #[test]
    fn disabled_rotation_never_promotes_on_schedule() {
        let p = Policy {
            rotation_interval: None,
            ..policy()
        };
        let keys = run(&[], &p, Trigger::Scheduled, t(0));
        let current = kid(&keys, KeyState::Current);
        assert_eq!(
            kid(
                &run(&keys, &p, Trigger::Scheduled, t(365 * 24 * 3600)),
                KeyState::Current
            ),
            current
        );
    }
}
