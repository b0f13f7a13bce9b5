-- Signing keys with their lifecycle state. private_key is AES-256-GCM sealed
-- under the KEK named by kek_id (NULL once the private part is destroyed).
CREATE TABLE signing_keys (
    kid           TEXT PRIMARY KEY,
    alg           TEXT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('next', 'current', 'retired')),
    public_jwk    TEXT NOT NULL,
    private_key   BYTEA,
    kek_id        TEXT,
    created_at    TIMESTAMPTZ NOT NULL,
    activated_at  TIMESTAMPTZ,
    retired_at    TIMESTAMPTZ
);
-- At most one key signs at any time, whichever replica created it.
CREATE UNIQUE INDEX signing_keys_one_current ON signing_keys(state) WHERE state = 'current';
