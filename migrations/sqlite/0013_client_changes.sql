-- Client changes announced by any process (the CLI, another server on the
-- same file): a running server polls PRAGMA data_version and reads the rows
-- after the last it saw, dropping those clients from its cache. PostgreSQL
-- announces the same changes with NOTIFY instead.
CREATE TABLE client_changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    client_id TEXT NOT NULL
);
