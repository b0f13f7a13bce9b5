//! [`ScopeSet`]: the `scope` parameter (RFC 6749 §3.3) as a set of scope tokens.

use std::{collections::BTreeSet, fmt};

/// A set of scope tokens. Each token is one or more `NQCHAR`s
/// (`%x21 / %x23-5B / %x5D-7E`); tokens are separated by single spaces.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScopeSet(BTreeSet<String>);

/// A scope string that is not a space-separated list of valid scope tokens.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("scope must be space-separated tokens of printable ASCII without '\"' or '\\'")]
pub struct InvalidScope;

impl ScopeSet {
    /// Parses a space-separated scope string. Runs of spaces are tolerated;
    /// any other white space or a forbidden character is an error.
    pub fn parse(s: &str) -> Result<Self, InvalidScope> {
        let mut set = BTreeSet::new();
        for token in s.split(' ').filter(|t| !t.is_empty()) {
            if !token
                .bytes()
                .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
            {
                return Err(InvalidScope);
            }
            set.insert(token.to_owned());
        }
        Ok(Self(set))
    }

    /// Whether every scope of `self` is in `other`.
    #[must_use]
    pub fn is_subset(&self, other: &Self) -> bool {
        self.0.is_subset(&other.0)
    }

    /// Whether the set is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The scope tokens in sorted order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(s)?;
        }
        Ok(())
    }
}

impl FromIterator<String> for ScopeSet {
    fn from_iter<I: IntoIterator<Item = String>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_displays_and_deduplicates() {
        let s = ScopeSet::parse("write  read read").unwrap();
        assert_eq!(s.to_string(), "read write");
        assert!(ScopeSet::parse("").unwrap().is_empty());
    }

    #[test]
    fn rejects_characters_outside_nqchar() {
        for bad in ["a\"b", "a\\b", "tab\there", "new\nline", "é", "a\u{7f}"] {
            assert_eq!(ScopeSet::parse(bad), Err(InvalidScope), "{bad:?}");
        }
        assert!(ScopeSet::parse("urn:x:y/z.read!#[]~").is_ok());
    }

    #[test]
    fn subset_is_set_inclusion() {
        let all = ScopeSet::parse("a b c").unwrap();
        assert!(ScopeSet::parse("a c").unwrap().is_subset(&all));
        assert!(ScopeSet::parse("").unwrap().is_subset(&all));
        assert!(!ScopeSet::parse("a d").unwrap().is_subset(&all));
    }

    #[test]
    fn iterates_sorted_and_collects_from_strings() {
        let s = ScopeSet::parse("write read").unwrap();
        assert!(!s.is_empty());
        assert_eq!(s.iter().collect::<Vec<_>>(), ["read", "write"]);
        let collected: ScopeSet = ["write", "read", "read"]
            .map(String::from)
            .into_iter()
            .collect();
        assert_eq!(collected, s);
    }
}
