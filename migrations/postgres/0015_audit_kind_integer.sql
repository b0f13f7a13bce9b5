-- Kinds and client ids share audit_names' numbering, so a kind first seen
-- after 32,767 names (a fleet of that many client ids) gets an id that a
-- SMALLINT cannot hold: appending its event failed, and the audit apply
-- retried that batch for ever while the journal filled. The column widens
-- to INTEGER, like `client` (SQLite's INTEGER was never this narrow).
-- PostgreSQL rewrites the table and its indexes once, holding its lock:
-- meanwhile events wait in each server's journal, and tokens are issued.
ALTER TABLE audit_events ALTER COLUMN kind TYPE INTEGER;
