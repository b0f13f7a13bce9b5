//! The compact storage forms of audit-event fields (migration 0009), shared
//! by both engines. Each form decodes to exactly the value that was hashed,
//! so the chain (`audit::chain::link`, unchanged) verifies either way.
//!
//! - hashes: 32 raw bytes instead of 64 hex characters;
//! - `request_id`: 16 raw bytes when it is a canonical (lowercase,
//!   hyphenated) UUID;
//! - anything else in those two columns (request ids that are not UUIDs,
//!   hashes of rows written before the migration that were not hex) is kept
//!   in text form: `0xFF`, then the UTF-8 text — with a second `0xFF` where
//!   the result would otherwise be as long as the raw form. UTF-8 never
//!   contains `0xFF`, so the two forms never collide;
//! - `details`: JSON text as before, or `0x01` followed by a binary form of the
//!   same JSON value in which common words (keys, grant types, methods) are
//!   one byte and UUID strings 16 bytes. JSON text never starts with `0x01`, so
//!   rows written before the migration stay readable as they are. A value is
//!   stored in binary only if it decodes back to exactly the same value.
//!
//! [`WORDS`] is part of the stored format: entries may be appended, never
//! changed, removed or reordered.

use serde_json::{Map, Number, Value};

/// Marks the binary form of `details`.
const BINARY: u8 = 0x01;
/// Marks a `request_id` stored as text.
const TEXT: u8 = 0xFF;
/// Deepest nesting decoded (stored data is never trusted to be sane).
const MAX_DEPTH: usize = 64;

/// Strings stored as one byte. Append only.
const WORDS: &[&str] = &[
    "grant_type",
    "auth_method",
    "jti",
    "scope",
    "expires_in",
    "refresh_token_issued",
    "client_credentials",
    "refresh_token",
    "client_secret_basic",
    "client_secret_post",
    "private_key_jwt",
    "tls_client_auth",
    "self_signed_tls_client_auth",
    "urn:ietf:params:oauth:grant-type:jwt-bearer",
    "urn:ietf:params:oauth:grant-type:token-exchange",
    "before",
    "after",
    "error_description",
    "current",
    "next",
    "removed",
    "warnings",
    "rewrapped",
    "kek_id",
    "grace_period",
    "previous_secrets_expire_at",
    "refresh_token_families_revoked",
    "access_tokens_issued_before",
];

/// Key sets (in `serde_json`'s sorted order) of objects stored as one byte
/// and then their values: the `token_issued` details. Append only.
const SHAPES: &[&[&str]] = &[&[
    "auth_method",
    "expires_in",
    "grant_type",
    "jti",
    "refresh_token_issued",
    "scope",
]];

mod tag {
    pub const NULL: u8 = 0;
    pub const FALSE: u8 = 1;
    pub const TRUE: u8 = 2;
    pub const UINT: u8 = 3;
    pub const NEG: u8 = 4;
    pub const FLOAT: u8 = 5;
    pub const STRING: u8 = 6;
    pub const WORD: u8 = 7;
    pub const UUID: u8 = 8;
    pub const ARRAY: u8 = 9;
    pub const OBJECT: u8 = 10;
    pub const SHAPED: u8 = 11;
    /// Bytes from here on are words: `WORDS[byte - SHORT_WORD]`.
    pub const SHORT_WORD: u8 = 0x80;
}

/// A stored field does not decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed stored {0}")]
pub struct Malformed(pub &'static str);

/// Lowercase hex of `bytes`.
#[must_use]
pub fn hex(bytes: &[u8]) -> String {
    crate::audit::chain::hex(bytes)
}

/// Bytes of a hex string (either case); `None` if it is not hex.
#[must_use]
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Text in a column whose raw values are `raw_len` bytes long.
fn text_form(text: &str, raw_len: usize) -> Vec<u8> {
    let prefix: &[u8] = if text.len() + 1 == raw_len {
        &[TEXT, TEXT]
    } else {
        &[TEXT]
    };
    [prefix, text.as_bytes()].concat()
}

/// The text of a text form, if `stored` is one.
fn from_text_form(stored: &[u8], what: &'static str) -> Option<Result<String, Malformed>> {
    let text = stored.strip_prefix(&[TEXT])?;
    let text = text.strip_prefix(&[TEXT]).unwrap_or(text);
    Some(String::from_utf8(text.to_vec()).map_err(|_| Malformed(what)))
}

/// The stored form of a `request_id`.
#[must_use]
pub fn encode_request_id(id: &str) -> Vec<u8> {
    match canonical_uuid(id) {
        Some(uuid) => uuid.as_bytes().to_vec(),
        None => text_form(id, 16),
    }
}

/// A `request_id` from its stored form.
pub fn decode_request_id(stored: &[u8]) -> Result<String, Malformed> {
    if stored.len() == 16 {
        return Ok(uuid::Uuid::from_slice(stored)
            .map_err(|_| Malformed("request id"))?
            .to_string());
    }
    from_text_form(stored, "request id").unwrap_or(Err(Malformed("request id")))
}

/// The stored form of a hash given in hex (text form if it is not 64 lowercase hex digits).
#[must_use]
pub fn encode_hash(hash: &str) -> Vec<u8> {
    match unhex(hash) {
        Some(raw) if raw.len() == 32 && hex(&raw) == hash => raw,
        _ => text_form(hash, 32),
    }
}

/// A hash (hex) from its stored form.
pub fn decode_hash(stored: &[u8]) -> Result<String, Malformed> {
    if stored.len() == 32 {
        return Ok(hex(stored));
    }
    from_text_form(stored, "hash").unwrap_or(Err(Malformed("hash")))
}

fn canonical_uuid(s: &str) -> Option<uuid::Uuid> {
    let uuid = uuid::Uuid::parse_str(s).ok()?;
    let mut text = uuid::Uuid::encode_buffer();
    (*uuid.hyphenated().encode_lower(&mut text) == *s).then_some(uuid)
}

/// The stored form of `details`: binary, else (nested deeper than the
/// decoder reads) JSON text.
///
/// Every binary form decodes to exactly the value written: words and UUIDs
/// are chosen only when the string is that word or that UUID's canonical
/// text, integers keep their sign, and a float is its own bits. So the
/// round trip is not re-checked here (decoding each event again cost a
/// tenth of the audit writer's time); the tests check it on every kind of
/// value, and debug builds on every event.
#[must_use]
pub fn encode_details(details: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.push(BINARY);
    if write_value(&mut out, details, 0) {
        debug_assert_eq!(decode_details(&out).as_ref(), Ok(details));
        out
    } else {
        details.to_string().into_bytes()
    }
}

/// `details` from its stored form (binary or JSON text).
pub fn decode_details(stored: &[u8]) -> Result<Value, Malformed> {
    match stored.split_first() {
        Some((&BINARY, rest)) => {
            let mut reader = Reader { rest };
            let value = reader.value(0)?;
            if reader.rest.is_empty() {
                Ok(value)
            } else {
                Err(Malformed("details"))
            }
        }
        _ => serde_json::from_slice(stored).map_err(|_| Malformed("details")),
    }
}

fn write_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        // Truncation intended: the low seven bits, with the continuation bit.
        #[allow(clippy::cast_possible_truncation)]
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    #[allow(clippy::cast_possible_truncation)]
    out.push(n as u8);
}

fn write_string(out: &mut Vec<u8>, s: &str) {
    if let Some(i) = WORDS.iter().position(|w| *w == s) {
        #[allow(clippy::cast_possible_truncation)] // WORDS has fewer than 256 entries
        let i = i as u8;
        match i.checked_add(tag::SHORT_WORD) {
            Some(short) => out.push(short),
            None => out.extend_from_slice(&[tag::WORD, i]),
        }
    } else if let Some(uuid) = canonical_uuid(s) {
        out.push(tag::UUID);
        out.extend_from_slice(uuid.as_bytes());
    } else {
        out.push(tag::STRING);
        write_varint(out, s.len() as u64);
        out.extend_from_slice(s.as_bytes());
    }
}

/// Writes the binary form of `v`; `false` when it nests deeper than
/// [`MAX_DEPTH`] (the reader would refuse it).
fn write_value(out: &mut Vec<u8>, v: &Value, depth: usize) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    match v {
        Value::Null => out.push(tag::NULL),
        Value::Bool(false) => out.push(tag::FALSE),
        Value::Bool(true) => out.push(tag::TRUE),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                out.push(tag::UINT);
                write_varint(out, u);
            } else if let Some(i) = n.as_i64() {
                out.push(tag::NEG);
                write_varint(out, !u64::from_ne_bytes(i.to_ne_bytes()));
            } else {
                out.push(tag::FLOAT);
                out.extend_from_slice(&n.as_f64().unwrap_or(f64::NAN).to_le_bytes());
            }
        }
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push(tag::ARRAY);
            write_varint(out, items.len() as u64);
            return items.iter().all(|item| write_value(out, item, depth + 1));
        }
        Value::Object(map) => {
            let shape = SHAPES.iter().position(|keys| {
                keys.len() == map.len() && keys.iter().zip(map.keys()).all(|(a, b)| a == b)
            });
            if let Some(i) = shape {
                out.push(tag::SHAPED);
                #[allow(clippy::cast_possible_truncation)] // SHAPES has fewer than 256 entries
                out.push(i as u8);
                return map.values().all(|item| write_value(out, item, depth + 1));
            }
            out.push(tag::OBJECT);
            write_varint(out, map.len() as u64);
            return map.iter().all(|(k, item)| {
                write_string(out, k);
                write_value(out, item, depth + 1)
            });
        }
    }
    true
}

struct Reader<'a> {
    rest: &'a [u8],
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], Malformed> {
        if self.rest.len() < n {
            return Err(Malformed("details"));
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8, Malformed> {
        Ok(self.take(1)?[0])
    }

    fn varint(&mut self) -> Result<u64, Malformed> {
        let mut n = 0_u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err(Malformed("details"))
    }

    fn len(&mut self) -> Result<usize, Malformed> {
        let n = usize::try_from(self.varint()?).map_err(|_| Malformed("details"))?;
        // Every element takes at least one byte: a larger count is corrupt.
        if n > self.rest.len() {
            return Err(Malformed("details"));
        }
        Ok(n)
    }

    fn string(&mut self) -> Result<String, Malformed> {
        let malformed = Malformed("details");
        match self.byte()? {
            short @ tag::SHORT_WORD.. => WORDS
                .get(usize::from(short - tag::SHORT_WORD))
                .map(|w| (*w).to_owned())
                .ok_or(malformed),
            tag::WORD => {
                let i = usize::from(self.byte()?);
                WORDS.get(i).map(|w| (*w).to_owned()).ok_or(malformed)
            }
            tag::UUID => uuid::Uuid::from_slice(self.take(16)?)
                .map(|u| u.to_string())
                .map_err(|_| malformed),
            tag::STRING => {
                let n = self.len()?;
                String::from_utf8(self.take(n)?.to_vec()).map_err(|_| malformed)
            }
            _ => Err(malformed),
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, Malformed> {
        let malformed = Malformed("details");
        if depth > MAX_DEPTH {
            return Err(malformed);
        }
        let Some(&t) = self.rest.first() else {
            return Err(malformed);
        };
        if matches!(t, tag::WORD | tag::UUID | tag::STRING | tag::SHORT_WORD..) {
            return self.string().map(Value::String);
        }
        self.byte()?;
        Ok(match t {
            tag::NULL => Value::Null,
            tag::FALSE => Value::Bool(false),
            tag::TRUE => Value::Bool(true),
            tag::UINT => Value::Number(self.varint()?.into()),
            tag::NEG => Value::Number(i64::from_ne_bytes((!self.varint()?).to_ne_bytes()).into()),
            tag::FLOAT => {
                let bytes: [u8; 8] = self.take(8)?.try_into().map_err(|_| malformed)?;
                Value::Number(Number::from_f64(f64::from_le_bytes(bytes)).ok_or(malformed)?)
            }
            tag::ARRAY => {
                let n = self.len()?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.value(depth + 1)?);
                }
                Value::Array(items)
            }
            tag::SHAPED => {
                let keys = SHAPES.get(usize::from(self.byte()?)).ok_or(malformed)?;
                let mut map = Map::new();
                for k in *keys {
                    map.insert((*k).to_owned(), self.value(depth + 1)?);
                }
                Value::Object(map)
            }
            tag::OBJECT => {
                let n = self.len()?;
                let mut map = Map::new();
                for _ in 0..n {
                    let k = self.string()?;
                    map.insert(k, self.value(depth + 1)?);
                }
                Value::Object(map)
            }
            _ => return Err(malformed),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_token_issued_event_is_small_and_round_trips() {
        let details = json!({
            "grant_type": "client_credentials",
            "auth_method": "client_secret_basic",
            "jti": "0b5e6a1c-4c2f-4d1e-9f3a-8e2b7c6d5a41",
            "scope": "read write",
            "expires_in": 300,
            "refresh_token_issued": false,
        });
        let stored = encode_details(&details);
        assert_eq!(stored[0], BINARY);
        assert!(stored.len() <= 38, "{} bytes", stored.len());
        assert_eq!(decode_details(&stored).unwrap(), details);
    }

    #[test]
    fn every_json_value_round_trips_and_old_text_still_reads() {
        let values = [
            json!({}),
            json!(null),
            json!({"a": [1, -1, i64::MIN, u64::MAX, 1.5, -0.25, "x", null, true, {"b": []}]}),
            json!({"before": {"scope": "read"}, "after": {"scope": "read write"}}),
            json!({"jti": "0B5E6A1C-4C2F-4D1E-9F3A-8E2B7C6D5A41", "n": "é ✓"}),
        ];
        for v in values {
            assert_eq!(decode_details(&encode_details(&v)).unwrap(), v, "{v}");
            assert_eq!(decode_details(v.to_string().as_bytes()).unwrap(), v, "{v}");
        }
    }

    #[test]
    fn details_nested_deeper_than_the_reader_goes_are_stored_as_text() {
        let nested = |depth: usize| {
            (0..depth).fold(json!("0b5e6a1c-4c2f-4d1e-9f3a-8e2b7c6d5a41"), |v, i| {
                if i % 2 == 0 {
                    json!([v])
                } else {
                    json!({ "jti": v })
                }
            })
        };
        let deepest = encode_details(&nested(MAX_DEPTH));
        assert_eq!(
            deepest[0], BINARY,
            "the deepest value the reader takes is binary"
        );
        assert_eq!(decode_details(&deepest).unwrap(), nested(MAX_DEPTH));
        let deeper = encode_details(&nested(MAX_DEPTH + 1));
        assert_eq!(deeper, nested(MAX_DEPTH + 1).to_string().into_bytes());
        assert_eq!(decode_details(&deeper).unwrap(), nested(MAX_DEPTH + 1));
    }

    #[test]
    fn corrupt_details_are_refused_not_panicked_on() {
        for bad in [
            &[BINARY][..],
            &[BINARY, tag::ARRAY, 0xff, 0xff, 0xff, 0xff, 0x0f],
            &[BINARY, tag::WORD, 250],
            &[BINARY, 0xfe],
            &[BINARY, tag::NULL, tag::NULL],
            &[BINARY, 99],
            b"{not json",
        ] {
            assert!(decode_details(bad).is_err(), "{bad:?}");
        }
        let deep = [vec![BINARY], [tag::ARRAY, 1].repeat(1000), vec![tag::NULL]].concat();
        assert!(decode_details(&deep).is_err());
    }

    #[test]
    fn request_ids_are_16_bytes_when_they_are_canonical_uuids() {
        let uuid = "0b5e6a1c-4c2f-4d1e-9f3a-8e2b7c6d5a41";
        assert_eq!(encode_request_id(uuid).len(), 16);
        for id in [
            uuid,
            "0B5E6A1C-4C2F-4D1E-9F3A-8E2B7C6D5A41",
            "req-1",
            "",
            "0123456789abcde",
            "0123456789abcdef",
        ] {
            assert_eq!(decode_request_id(&encode_request_id(id)).unwrap(), id);
        }
    }

    #[test]
    fn hashes_are_32_bytes_and_anything_else_is_kept_as_text() {
        let h = "ab".repeat(32);
        assert_eq!(encode_hash(&h).len(), 32);
        for text in [
            h.as_str(),
            &"AB".repeat(32),
            "not hex",
            &"x".repeat(31),
            &"y".repeat(32),
            "",
        ] {
            assert_eq!(decode_hash(&encode_hash(text)).unwrap(), text);
        }
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(hex(&unhex("00ffA1").unwrap()), "00ffa1");
        assert!(unhex("0g").is_none() && unhex("abc").is_none());
    }
}
