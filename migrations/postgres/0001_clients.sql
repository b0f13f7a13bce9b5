-- OAuth clients (RFC 7591 metadata that this server uses) and their secrets.
CREATE TABLE clients (
    id                          TEXT PRIMARY KEY,
    client_name                 TEXT,
    grant_types                 TEXT NOT NULL,
    token_endpoint_auth_method  TEXT NOT NULL,
    scope                       TEXT NOT NULL,
    allowed_audiences           TEXT NOT NULL,
    default_audience            TEXT,
    access_token_ttl            BIGINT,
    enabled                     BOOLEAN NOT NULL,
    created_at                  TIMESTAMPTZ NOT NULL,
    updated_at                  TIMESTAMPTZ NOT NULL
);

-- A client has one secret with no expiry; after a rotation the previous ones
-- carry the end of their grace period in expires_at.
CREATE TABLE client_secrets (
    id           TEXT PRIMARY KEY,
    client_id    TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    secret_hash  TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ
);
CREATE INDEX client_secrets_client_id ON client_secrets(client_id);
