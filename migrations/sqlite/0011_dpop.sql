-- DPoP (RFC 9449): clients whose access tokens must be DPoP-bound (§5.2),
-- and refresh families bound to the DPoP key of the grant that started them
-- (its RFC 7638 JWK SHA-256 thumbprint, `cnf.jkt`).
-- The ids (jti) of accepted DPoP proofs share client_assertion_jtis with
-- client assertions, under a "dpop:" prefix: one replay record per proof,
-- on every replica, purged with the assertions once expired.
ALTER TABLE clients ADD COLUMN dpop_bound_access_tokens BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE refresh_families ADD COLUMN dpop_jkt TEXT;
