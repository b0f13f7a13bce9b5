-- How far each server's local audit journal has been applied to audit_events:
-- advanced in the same transaction that appends the events, so a crash can
-- neither duplicate nor lose a journaled event.
CREATE TABLE audit_journal_cursors (
    journal_id   TEXT PRIMARY KEY,
    applied_seq  INTEGER NOT NULL
);
