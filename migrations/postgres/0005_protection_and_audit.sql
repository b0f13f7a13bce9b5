-- The append-only, hash-chained audit trail; lockout and per-client limits.
CREATE TABLE audit_events (
    id           BIGINT PRIMARY KEY,
    occurred_at  TIMESTAMPTZ NOT NULL,
    kind         TEXT NOT NULL,
    actor        TEXT NOT NULL,
    client_id    TEXT,
    request_id   TEXT,
    reason       TEXT,
    details      TEXT NOT NULL,
    prev_hash    TEXT NOT NULL,
    hash         TEXT NOT NULL
);
CREATE INDEX audit_events_client_id ON audit_events(client_id, id);
CREATE INDEX audit_events_kind ON audit_events(kind, id);
CREATE INDEX audit_events_occurred_at ON audit_events(occurred_at);

ALTER TABLE clients ADD COLUMN locked_until TIMESTAMPTZ;
ALTER TABLE clients ADD COLUMN rate_limit_per_second BIGINT;
ALTER TABLE clients ADD COLUMN rate_limit_burst BIGINT;
ALTER TABLE clients ADD COLUMN token_quota_per_hour BIGINT;
ALTER TABLE clients ADD COLUMN token_quota_per_day BIGINT;

-- Tokens issued per client and window, summed across replicas.
CREATE TABLE token_usage (
    client_id     TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    period        TEXT NOT NULL CHECK (period IN ('hour', 'day')),
    window_start  TIMESTAMPTZ NOT NULL,
    issued        BIGINT NOT NULL,
    PRIMARY KEY (client_id, period, window_start)
);
