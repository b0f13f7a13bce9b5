-- The audit trail in a compact form, retention checkpoints. No data is lost:
-- every old row is kept, converted (see src/store/audit_codec.rs for the
-- stored forms). Independent of migration 0008.

-- Names an event refers to by number: event kinds and client ids. Rows are
-- never changed or removed. 1 is `token_issued` (the partial index below).
CREATE TABLE audit_names (
    id    BIGINT PRIMARY KEY,
    name  TEXT NOT NULL UNIQUE
);
INSERT INTO audit_names (id, name) VALUES (1, 'token_issued');
INSERT INTO audit_names (id, name)
    SELECT 1 + ROW_NUMBER() OVER (ORDER BY name), name FROM (
        SELECT kind AS name FROM audit_events
        UNION SELECT client_id FROM audit_events WHERE client_id IS NOT NULL
    ) AS n WHERE name <> 'token_issued';

CREATE TABLE audit_events_compact (
    id           BIGINT PRIMARY KEY,
    occurred_at  TIMESTAMPTZ NOT NULL,
    client       INTEGER,           -- audit_names.id of the client id
    kind         SMALLINT NOT NULL, -- audit_names.id
    actor        TEXT,              -- NULL: 'client:' || the client id
    request_id   BYTEA,             -- a UUID's 16 bytes, or '\xff' || UTF-8 text
    reason       TEXT,
    details      BYTEA NOT NULL,    -- JSON text, or '\x01' || the binary form
    prev_hash    BYTEA,             -- NULL: the previous event's hash; set only where an old row's differed
    hash         BYTEA NOT NULL     -- 32 bytes ('\xff' || text: an old row's hash that was not hex)
);
INSERT INTO audit_events_compact
    (id, occurred_at, client, kind, actor, request_id, reason, details, prev_hash, hash)
SELECT e.id, e.occurred_at, c.id, k.id,
    CASE WHEN e.actor = 'client:' || e.client_id THEN NULL ELSE e.actor END,
    CASE WHEN e.request_id IS NULL THEN NULL ELSE CASE WHEN octet_length(e.request_id) = 15 THEN '\xffff'::bytea ELSE '\xff'::bytea END || convert_to(e.request_id, 'UTF8') END,
    e.reason,
    convert_to(e.details, 'UTF8'),
    CASE WHEN e.prev_hash = COALESCE(
            (SELECT p.hash FROM audit_events p WHERE p.id = e.id - 1),
            CASE WHEN e.id = 1 THEN '0000000000000000000000000000000000000000000000000000000000000000' END)
        THEN NULL ELSE CASE WHEN octet_length(e.prev_hash) = 31 THEN '\xffff'::bytea ELSE '\xff'::bytea END || convert_to(e.prev_hash, 'UTF8') END,
    CASE WHEN e.hash ~ '^[0-9a-f]{64}$' THEN decode(e.hash, 'hex')
        ELSE CASE WHEN octet_length(e.hash) = 31 THEN '\xffff'::bytea ELSE '\xff'::bytea END || convert_to(e.hash, 'UTF8') END
FROM audit_events e
JOIN audit_names k ON k.name = e.kind
LEFT JOIN audit_names c ON c.name = e.client_id;

DROP TABLE audit_events;
ALTER TABLE audit_events_compact RENAME TO audit_events;
ALTER INDEX audit_events_compact_pkey RENAME TO audit_events_pkey;
-- Ids only grow: pack the id index's pages full.
ALTER INDEX audit_events_pkey SET (fillfactor = 100);
-- One entry per client with its rows' addresses (B-tree deduplication, a few
-- bytes per event); a page of one client's events is read through this index
-- for a rare client and by scanning in id order for a busy one.
CREATE INDEX audit_events_client ON audit_events(client);
-- Rare kinds only: `token_issued` events are found by scanning in id order.
CREATE INDEX audit_events_kind ON audit_events(kind, id) WHERE kind <> 1;

-- One row per retention cut: the last removed event, how many were removed
-- in total, chained by hash to the previous cut.
CREATE TABLE audit_checkpoints (
    id         BIGINT PRIMARY KEY,
    cut_at     TIMESTAMPTZ NOT NULL,
    last_id    BIGINT NOT NULL,
    last_hash  BYTEA NOT NULL,
    removed    BIGINT NOT NULL,
    prev_hash  BYTEA NOT NULL,
    hash       BYTEA NOT NULL
);
