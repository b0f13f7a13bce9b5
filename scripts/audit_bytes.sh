#!/bin/sh
# Bytes the audit trail takes per stored event (nearly all are token_issued:
# one per issued token), tables and indexes included, for an existing
# database. Needs `sqlite3` or `psql`.
#
#   scripts/audit_bytes.sh sqlite://data/portcullis.db
#   scripts/audit_bytes.sh postgres://user@host:5432/portcullis
#
# SQLite counts the pages of every `audit*` table and index (the `dbstat`
# virtual table); PostgreSQL sums `pg_total_relation_size` of every `audit*`
# table (indexes, free-space and visibility maps included; run VACUUM first
# for a settled figure after deletions).
set -eu
url="${1:-${PORTCULLIS_DATABASE_URL:-${DATABASE_URL:-sqlite://data/portcullis.db}}}"
case "$url" in
sqlite:*)
    file="${url#sqlite:}"
    file="${file#//}"
    file="${file%%\?*}"
    sqlite3 -readonly "$file" "
        SELECT (SELECT SUM(pgsize) FROM dbstat WHERE name IN
                   (SELECT name FROM sqlite_master WHERE tbl_name LIKE 'audit%')) AS bytes,
               (SELECT COUNT(*) FROM audit_events) AS events;" |
        awk -F'|' '{ printf "{\"engine\":\"sqlite\",\"audit_bytes\":%d,\"events\":%d,\"bytes_per_event\":%.1f}\n", $1, $2, ($2 > 0 ? $1 / $2 : 0) }'
    ;;
postgres:* | postgresql:*)
    psql "$url" -Atq -F'|' -c "
        SELECT (SELECT SUM(pg_total_relation_size(oid)) FROM pg_class
                 WHERE relkind = 'r' AND relname LIKE 'audit%'
                   AND relnamespace = 'public'::regnamespace),
               (SELECT COUNT(*) FROM audit_events);" |
        awk -F'|' '{ printf "{\"engine\":\"postgres\",\"audit_bytes\":%d,\"events\":%d,\"bytes_per_event\":%.1f}\n", $1, $2, ($2 > 0 ? $1 / $2 : 0) }'
    ;;
*)
    echo "usage: $0 sqlite://FILE | postgres://…" >&2
    exit 2
    ;;
esac
