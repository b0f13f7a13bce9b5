-- Secretless client authentication: private_key_jwt (RFC 7523) and mutual
-- TLS (RFC 8705), and certificate-bound tokens.

-- The client's JWK set or jwks_uri, assertion algorithm and certificate
-- subject, as one JSON document (absent for secret-based clients).
ALTER TABLE clients ADD COLUMN key_material TEXT;
ALTER TABLE clients ADD COLUMN certificate_bound_access_tokens BOOLEAN NOT NULL DEFAULT FALSE;

-- A certificate-bound refresh family only refreshes with the same certificate
-- (its RFC 8705 x5t#S256 thumbprint).
ALTER TABLE refresh_families ADD COLUMN certificate_thumbprint TEXT;

-- Client assertion ids seen, kept until the assertion expires: a jti is
-- accepted once, on every replica.
CREATE TABLE client_assertion_jtis (
    client_id   TEXT NOT NULL,
    jti         TEXT NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (client_id, jti)
);
CREATE INDEX client_assertion_jtis_expires_at ON client_assertion_jtis(expires_at);
