-- The rotation safety signal: the JWKS version each consumer fetched last.
CREATE TABLE jwks_consumers (
    address     TEXT NOT NULL,
    user_agent  TEXT NOT NULL,
    etag        TEXT NOT NULL,
    kids        TEXT NOT NULL,
    seen_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (address, user_agent)
);
CREATE INDEX jwks_consumers_seen_at ON jwks_consumers(seen_at);
