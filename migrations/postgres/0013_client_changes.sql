-- Nothing to store: PostgreSQL announces client changes with NOTIFY on the
-- portcullis_clients channel. SQLite keeps them in a client_changes table
-- (its migration 0013), which a running server polls.
SELECT 1;
