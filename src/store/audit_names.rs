//! The `audit_names` ids already read from the database, so that appending a
//! batch of events does not look up the same kinds and client ids again.
//! Rows of `audit_names` are never changed or deleted (migration 0009: the
//! table only grows, under the audit lock), so an id read once stays right
//! for the life of the database; only ids read from committed rows are kept
//! (never those a transaction that may still roll back has just added).
//! Bounded: past `MAX` names the memory starts over.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

/// Most names held.
const MAX: usize = 20_000;

/// Known name ids, shared by the clones of one engine's store.
#[derive(Clone, Debug, Default)]
pub(super) struct AuditNames(Arc<Mutex<HashMap<String, i64>>>);

impl AuditNames {
    /// The ids of the known names among `names`, and the unknown names.
    pub(super) fn split<'a>(
        &self,
        names: BTreeSet<&'a str>,
    ) -> (HashMap<String, i64>, BTreeSet<&'a str>) {
        let known = self.lock();
        let mut ids = HashMap::with_capacity(names.len());
        let mut unknown = BTreeSet::new();
        for name in names {
            match known.get(name) {
                Some(&id) => {
                    ids.insert(name.to_owned(), id);
                }
                None => {
                    unknown.insert(name);
                }
            }
        }
        (ids, unknown)
    }

    /// Remembers ids read from committed rows.
    pub(super) fn learn<'a>(&self, read: impl IntoIterator<Item = (&'a String, &'a i64)>) {
        let mut known = self.lock();
        for (name, &id) in read {
            if known.len() >= MAX {
                known.clear();
            }
            known.insert(name.clone(), id);
        }
    }

    /// Names held.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, i64>> {
        // Nothing panics while the lock is held; a poisoned map is still consistent.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_names_are_answered_and_the_rest_left_to_the_database() {
        let names = AuditNames::default();
        let (ids, unknown) = names.split(["a", "b"].into());
        assert!(ids.is_empty());
        assert_eq!(unknown, ["a", "b"].into());
        names.learn(&HashMap::from([("a".to_owned(), 7)]));
        let (ids, unknown) = names.clone().split(["a", "b"].into());
        assert_eq!(ids, HashMap::from([("a".to_owned(), 7)]));
        assert_eq!(unknown, ["b"].into());
    }

    #[test]
    fn the_memory_is_bounded() {
        let names = AuditNames::default();
        let many: HashMap<String, i64> = (0..=MAX as i64).map(|i| (format!("n{i}"), i)).collect();
        names.learn(&many);
        assert!(names.len() <= MAX && names.len() > 0, "{}", names.len());
    }
}
