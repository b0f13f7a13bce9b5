//! The journal's on-disk record: a frame of `length (u32 LE) | CRC-32 of
//! sequence number and payload (u32 LE) | sequence number (u64 LE) |
//! payload`, the payload being the event as JSON. A frame that is cut short
//! or fails its CRC ends the valid part of a segment: it was never
//! acknowledged (a crash while it was written), so it is discarded.

use std::{borrow::Cow, collections::HashSet, sync::Mutex};

use chrono::DateTime;
use serde::{Deserialize, Serialize};

use crate::audit::{
    event::{ClientActor, IssuedDetails, Shown},
    AuditEvent, TokenIssued,
};

/// Bytes before the payload.
pub(super) const HEADER: usize = 16;
/// Largest payload accepted when reading (a larger length is a torn frame).
pub(super) const MAX_PAYLOAD: usize = 16 << 20;

/// An event as the journal stores it.
#[derive(Serialize, Deserialize)]
struct Entry<'a> {
    /// `occurred_at`, microseconds since the epoch (the chain's precision).
    at: i64,
    #[serde(borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    actor: Cow<'a, str>,
    #[serde(borrow, default)]
    client_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    request_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    reason: Option<Cow<'a, str>>,
    details: serde_json::Value,
}

/// The payload of `event`.
#[must_use]
pub fn encode_event(event: &AuditEvent) -> Vec<u8> {
    let entry = Entry {
        at: event.occurred_at.timestamp_micros(),
        kind: Cow::Borrowed(event.kind),
        actor: Cow::Borrowed(&event.actor),
        client_id: event.client_id.as_deref().map(Cow::Borrowed),
        request_id: event.request_id.as_deref().map(Cow::Borrowed),
        reason: event.reason.as_deref().map(Cow::Borrowed),
        details: event.details.clone(),
    };
    serde_json::to_vec(&entry).unwrap_or_default()
}

/// The payload of a typed `token_issued` event: the same record as
/// [`encode_event`] writes for [`TokenIssued::to_event`], serialised from the
/// borrowed fields.
#[must_use]
pub fn encode_token_issued(event: &TokenIssued<'_>) -> Vec<u8> {
    #[derive(Serialize)]
    struct IssuedEntry<'a> {
        at: i64,
        kind: &'static str,
        actor: Shown<'a>,
        client_id: &'a str,
        request_id: Option<&'a str>,
        details: IssuedDetails<'a>,
    }
    let actor = ClientActor(event.client_id);
    let entry = IssuedEntry {
        at: event.occurred_at.timestamp_micros(),
        kind: TokenIssued::KIND,
        actor: Shown(&actor),
        client_id: event.client_id,
        request_id: event.request_id,
        details: event.details(),
    };
    let mut out = Vec::with_capacity(320);
    match serde_json::to_writer(&mut out, &entry) {
        Ok(()) => out,
        Err(_) => Vec::new(),
    }
}

/// The event in a payload, or `None` if it does not decode.
#[must_use]
pub fn decode_event(payload: &[u8]) -> Option<AuditEvent> {
    let entry: Entry<'_> = serde_json::from_slice(payload).ok()?;
    Some(AuditEvent {
        occurred_at: DateTime::from_timestamp_micros(entry.at)?,
        kind: intern(&entry.kind),
        actor: entry.actor.into_owned(),
        client_id: entry.client_id.map(Cow::into_owned),
        request_id: entry.request_id.map(Cow::into_owned),
        reason: entry.reason.map(Cow::into_owned),
        details: entry.details,
    })
}

/// Event kinds are `&'static str`; the few read back from a journal are kept
/// once for the life of the process.
fn intern(kind: &str) -> &'static str {
    static KINDS: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);
    let Ok(mut guard) = KINDS.lock() else {
        return "unknown";
    };
    let kinds = guard.get_or_insert_with(HashSet::new);
    if let Some(k) = kinds.get(kind) {
        return k;
    }
    let k: &'static str = Box::leak(kind.to_owned().into_boxed_str());
    kinds.insert(k);
    k
}

/// Appends the frame of `payload` with sequence number `seq` to `out`.
pub(super) fn write_frame(out: &mut Vec<u8>, seq: u64, payload: &[u8]) {
    let seq_bytes = seq.to_le_bytes();
    let mut crc = crc32fast::Hasher::new();
    crc.update(&seq_bytes);
    crc.update(payload);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(&seq_bytes);
    out.extend_from_slice(payload);
}

/// The size of the frame of a `payload_len`-byte payload.
#[must_use]
pub(super) fn frame_len(payload_len: usize) -> u64 {
    (HEADER + payload_len) as u64
}

/// What starts at the beginning of `buf`.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Parsed<'a> {
    /// A valid frame: its sequence number, payload and total size.
    Frame {
        /// Sequence number.
        seq: u64,
        /// The event's JSON.
        payload: &'a [u8],
        /// Header and payload.
        len: usize,
    },
    /// A frame of this total size whose end is not in `buf`.
    Incomplete(usize),
    /// Not a valid frame (torn or corrupt): the valid part ends here.
    Invalid,
}

/// Parses the frame at the start of `buf`.
#[must_use]
pub(super) fn parse(buf: &[u8]) -> Parsed<'_> {
    if buf.len() < HEADER {
        return Parsed::Incomplete(HEADER);
    }
    let word = |at: usize| u32::from_le_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]);
    let len = word(0) as usize;
    if len == 0 || len > MAX_PAYLOAD {
        return Parsed::Invalid;
    }
    let total = HEADER + len;
    if buf.len() < total {
        return Parsed::Incomplete(total);
    }
    let mut crc = crc32fast::Hasher::new();
    crc.update(&buf[8..total]);
    if crc.finalize() != word(4) {
        return Parsed::Invalid;
    }
    let mut seq = [0_u8; 8];
    seq.copy_from_slice(&buf[8..16]);
    Parsed::Frame {
        seq: u64::from_le_bytes(seq),
        payload: &buf[HEADER..total],
        len: total,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_survives_the_round_trip() {
        let event = AuditEvent::new(
            "token_issued",
            "client:a",
            DateTime::from_timestamp_micros(1_800_000_000_123_456).unwrap(),
        )
        .client("a")
        .reason("why")
        .details(serde_json::json!({"jti": "x"}));
        let back = decode_event(&encode_event(&event)).unwrap();
        assert_eq!(back.kind, "token_issued");
        assert_eq!(
            back.occurred_at.timestamp_micros(),
            event.occurred_at.timestamp_micros()
        );
        assert_eq!(
            (back.actor, back.client_id, back.reason, back.details),
            (event.actor, event.client_id, event.reason, event.details)
        );
    }

    #[test]
    fn a_typed_token_issued_event_journals_as_the_generic_one() {
        let scope = "read write";
        for (request_id, refresh) in [
            (Some("5f0c8a52-3b7e-4d3f-9a51-1c2d3e4f5a6b"), false),
            (None, true),
        ] {
            let typed = TokenIssued {
                occurred_at: DateTime::from_timestamp_micros(1_800_000_000_123_456).unwrap(),
                client_id: "svc-\"quoted\"",
                request_id,
                grant_type: "client_credentials",
                auth_method: "client_secret_basic",
                jti: "0d3f4a52-3b7e-4d3f-9a51-1c2d3e4f5a6b",
                scope: &scope,
                expires_in: 300,
                refresh_token_issued: refresh,
            };
            let generic =
                AuditEvent::new("token_issued", "client:svc-\"quoted\"", typed.occurred_at)
                    .request(request_id)
                    .client("svc-\"quoted\"")
                    .details(serde_json::json!({
                        "grant_type": "client_credentials",
                        "auth_method": "client_secret_basic",
                        "jti": "0d3f4a52-3b7e-4d3f-9a51-1c2d3e4f5a6b",
                        "scope": "read write",
                        "expires_in": 300,
                        "refresh_token_issued": refresh,
                    }));
            let back = decode_event(&encode_token_issued(&typed)).unwrap();
            let fields = |e: &AuditEvent| {
                (
                    e.occurred_at,
                    e.kind,
                    e.actor.clone(),
                    e.client_id.clone(),
                    e.request_id.clone(),
                    e.reason.clone(),
                    e.details.clone(),
                )
            };
            assert_eq!(fields(&back), fields(&generic));
            assert_eq!(fields(&typed.to_event()), fields(&generic));
            assert_eq!(typed.details().to_string(), generic.details.to_string());
        }
    }

    #[test]
    fn frames_parse_and_damage_is_detected() {
        let mut buf = Vec::new();
        write_frame(&mut buf, 7, b"{}");
        let Parsed::Frame { seq, payload, len } = parse(&buf) else {
            panic!("frame expected");
        };
        assert_eq!((seq, payload, len), (7, &b"{}"[..], buf.len()));
        assert_eq!(parse(&buf[..buf.len() - 1]), Parsed::Incomplete(buf.len()));
        let mut flipped = buf.clone();
        flipped[HEADER] ^= 1;
        assert_eq!(parse(&flipped), Parsed::Invalid);
        assert_eq!(parse(&[0_u8; 32]), Parsed::Invalid, "zeroed tail");
    }
}
