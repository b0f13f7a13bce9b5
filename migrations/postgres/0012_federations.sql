-- Workload identity federation: trusted external token issuers, each one
-- JSON document (issuer, key source, audiences, algorithms, mapping rules).
CREATE TABLE federations (
    id          TEXT PRIMARY KEY,
    issuer      TEXT NOT NULL UNIQUE,
    document    TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
