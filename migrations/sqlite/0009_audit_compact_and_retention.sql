-- Times are microseconds since the Unix epoch (UTC).
-- The audit trail in a compact form, retention checkpoints. No data is lost:
-- every old row is kept, converted (see src/store/audit_codec.rs for the
-- stored forms). Independent of migration 0008.

-- Names an event refers to by number: event kinds and client ids. Rows are
-- never changed or removed. 1 is `token_issued` (the partial index below).
CREATE TABLE audit_names (
    id    INTEGER PRIMARY KEY,
    name  TEXT NOT NULL UNIQUE
);
INSERT INTO audit_names (id, name) VALUES (1, 'token_issued');
INSERT INTO audit_names (id, name)
    SELECT 1 + ROW_NUMBER() OVER (ORDER BY name), name FROM (
        SELECT kind AS name FROM audit_events
        UNION SELECT client_id FROM audit_events WHERE client_id IS NOT NULL
    ) WHERE name <> 'token_issued';

CREATE TABLE audit_events_compact (
    id           INTEGER PRIMARY KEY,
    occurred_at  INTEGER NOT NULL,
    kind         INTEGER NOT NULL,  -- audit_names.id
    client       INTEGER,           -- audit_names.id of the client id
    actor        TEXT,              -- NULL: 'client:' || the client id
    request_id   BLOB,              -- a UUID's 16 bytes, or X'FF' || UTF-8 text
    reason       TEXT,
    details      BLOB NOT NULL,     -- JSON text, or X'01' || the binary form
    prev_hash    BLOB,              -- NULL: the previous event's hash; set only where an old row's differed
    hash         BLOB NOT NULL      -- 32 bytes (X'FF' || text: an old row's hash that was not hex)
);
INSERT INTO audit_events_compact
    (id, occurred_at, kind, client, actor, request_id, reason, details, prev_hash, hash)
SELECT e.id, e.occurred_at, k.id, c.id,
    CASE WHEN e.actor = 'client:' || e.client_id THEN NULL ELSE e.actor END,
    CASE WHEN e.request_id IS NULL THEN NULL ELSE unhex(CASE WHEN length(CAST(e.request_id AS BLOB)) = 15 THEN 'FFFF' ELSE 'FF' END || hex(e.request_id)) END,
    e.reason,
    CAST(e.details AS BLOB),
    CASE WHEN e.prev_hash = COALESCE(
            (SELECT p.hash FROM audit_events p WHERE p.id = e.id - 1),
            CASE WHEN e.id = 1 THEN '0000000000000000000000000000000000000000000000000000000000000000' END)
        THEN NULL ELSE unhex(CASE WHEN length(CAST(e.prev_hash AS BLOB)) = 31 THEN 'FFFF' ELSE 'FF' END || hex(e.prev_hash)) END,
    CASE WHEN length(e.hash) = 64 AND lower(e.hash) = e.hash AND unhex(e.hash) IS NOT NULL
        THEN unhex(e.hash) ELSE unhex(CASE WHEN length(CAST(e.hash AS BLOB)) = 31 THEN 'FFFF' ELSE 'FF' END || hex(e.hash)) END
FROM audit_events e
JOIN audit_names k ON k.name = e.kind
LEFT JOIN audit_names c ON c.name = e.client_id;

DROP TABLE audit_events;
ALTER TABLE audit_events_compact RENAME TO audit_events;
-- `ORDER BY id` pages by client (SQLite appends the rowid to every index entry).
CREATE INDEX audit_events_client ON audit_events(client);
-- Rare kinds only: `token_issued` events are found by scanning in id order.
CREATE INDEX audit_events_kind ON audit_events(kind) WHERE kind <> 1;

-- One row per retention cut: the last removed event, how many were removed
-- in total, chained by hash to the previous cut.
CREATE TABLE audit_checkpoints (
    id         INTEGER PRIMARY KEY,
    cut_at     INTEGER NOT NULL,
    last_id    INTEGER NOT NULL,
    last_hash  BLOB NOT NULL,
    removed    INTEGER NOT NULL,
    prev_hash  BLOB NOT NULL,
    hash       BLOB NOT NULL
);
