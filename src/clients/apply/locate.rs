//! Where a member of a declarative document is written: the line numbers in
//! apply's error messages.
//!
//! `serde_yaml_ng` reports where its own errors are, but the checks that run
//! after it (metadata validation, secret references, duplicate ids) see
//! values without positions. The [`Locator`] finds them again in the text:
//! the members of an entry come in document order, so an entry starts where
//! its first member is written after the previous entry, and a member of an
//! entry is the first key of that name between the entry's start and the
//! next entry's. This holds for block YAML, flow YAML and JSON alike; a key
//! is a name, optionally quoted, followed by `:`, outside a `#` comment line.

/// Finds keys in one document's text.
#[derive(Debug)]
pub struct Locator<'a> {
    text: &'a str,
}

impl<'a> Locator<'a> {
    /// A locator over `text`.
    #[must_use]
    pub fn new(text: &'a str) -> Self {
        Self { text }
    }

    /// The byte offset of the first key `key` in `from..until`.
    #[must_use]
    pub fn key(&self, key: &str, from: usize, until: usize) -> Option<usize> {
        let until = until.min(self.text.len());
        let mut start = from;
        while start < until {
            let found = start + self.text.get(start..until)?.find(key)?;
            if self.is_key_at(found, key) && !self.in_comment(found) {
                return Some(found);
            }
            start = found + key.len();
        }
        None
    }

    /// The 1-based line of byte offset `at`.
    #[must_use]
    pub fn line(&self, at: usize) -> usize {
        self.text
            .get(..at)
            .map_or(1, |t| t.bytes().filter(|b| *b == b'\n').count() + 1)
    }

    /// The length of the text.
    #[must_use]
    pub fn len(&self) -> usize {
        self.text.len()
    }

    /// Whether the text is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    fn is_key_at(&self, at: usize, key: &str) -> bool {
        let bytes = self.text.as_bytes();
        let before = at.checked_sub(1).map(|i| bytes[i]);
        let quote = match before {
            Some(q @ (b'"' | b'\'')) => Some(q),
            _ => None,
        };
        let lead = if quote.is_some() {
            at.checked_sub(2).map(|i| bytes[i])
        } else {
            before
        };
        if !lead.is_none_or(|b| b.is_ascii_whitespace() || matches!(b, b'{' | b',' | b'-' | b'[')) {
            return false;
        }
        let mut after = at + key.len();
        if let Some(q) = quote {
            if bytes.get(after) != Some(&q) {
                return false;
            }
            after += 1;
        }
        while bytes.get(after).is_some_and(|b| *b == b' ' || *b == b'\t') {
            after += 1;
        }
        bytes.get(after) == Some(&b':')
    }

    fn in_comment(&self, at: usize) -> bool {
        let line_start = self.text[..at].rfind('\n').map_or(0, |i| i + 1);
        self.text[line_start..at].trim_start().starts_with('#')
    }
}

#[cfg(test)]
mod tests {
    use super::Locator;

    #[test]
    fn keys_are_found_in_yaml_and_json_but_not_in_values_or_comments() {
        let yaml = "# client_id: no\nclients:\n  - client_name: client_id\n    client_id: a\n";
        let l = Locator::new(yaml);
        let at = l.key("client_id", 0, yaml.len()).unwrap();
        assert_eq!(l.line(at), 4);
        let json = "{\"clients\": [\n {\"scope\": \"x\",\n  \"client_id\": \"a\"}]}";
        let l = Locator::new(json);
        assert_eq!(l.line(l.key("client_id", 0, json.len()).unwrap()), 3);
        assert_eq!(l.key("scopes", 0, json.len()), None);
    }

    #[test]
    fn a_search_stays_in_its_range() {
        let yaml = "- client_id: a\n- client_id: b\n  scope: x\n";
        let l = Locator::new(yaml);
        let first = l.key("client_id", 0, yaml.len()).unwrap();
        let second = l.key("client_id", first + 1, yaml.len()).unwrap();
        assert_eq!(l.line(second), 2);
        assert_eq!(l.key("scope", first, second), None);
        assert_eq!(l.line(l.key("scope", second, yaml.len()).unwrap()), 3);
    }
}
