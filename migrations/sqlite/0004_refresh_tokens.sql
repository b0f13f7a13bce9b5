-- Times are microseconds since the Unix epoch (UTC).
-- Refresh tokens (rotated on every use, in families), access-token revocation,
-- and the client settings they need.
ALTER TABLE clients ADD COLUMN allow_introspection BOOLEAN NOT NULL DEFAULT 0;
ALTER TABLE clients ADD COLUMN refresh_token_idle_ttl INTEGER;
ALTER TABLE clients ADD COLUMN refresh_token_absolute_ttl INTEGER;
-- Access tokens issued before this time are inactive ("revoke every token").
ALTER TABLE clients ADD COLUMN tokens_revoked_before INTEGER;

-- One family per client-credentials grant; every rotation stays in it.
CREATE TABLE refresh_families (
    id              TEXT PRIMARY KEY,
    client_id       TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    scope           TEXT NOT NULL,
    audiences       TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    revoked_at      INTEGER,
    revoked_reason  TEXT
);
CREATE INDEX refresh_families_client_id ON refresh_families(client_id);

-- Only the SHA-256 of a refresh token is stored. Every token of a family
-- carries the family's scope and audiences (RFC 6749 §6).
CREATE TABLE refresh_tokens (
    token_hash   TEXT PRIMARY KEY,
    family_id    TEXT NOT NULL REFERENCES refresh_families(id) ON DELETE CASCADE,
    issued_at    INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    consumed_at  INTEGER
);
CREATE INDEX refresh_tokens_family_id ON refresh_tokens(family_id);

-- Revoked access tokens, kept until they would have expired anyway.
CREATE TABLE revoked_access_tokens (
    jti         TEXT PRIMARY KEY,
    client_id   TEXT NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX revoked_access_tokens_expires_at ON revoked_access_tokens(expires_at);
