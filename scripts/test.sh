#!/usr/bin/env bash
# Runs the whole test suite against both engines: SQLite (embedded, nothing to
# set up) and PostgreSQL. When DATABASE_URL is not given, a throwaway
# PostgreSQL cluster is started from the system's binaries (installed through
# apt when missing and we are root) and removed afterwards.
#
#   scripts/test.sh                    # throwaway PostgreSQL
#   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres scripts/test.sh
#
# Extra arguments go to `cargo test` (e.g. a test name filter); without them,
# the API check (scripts/api_check.sh: schemathesis against a running server)
# and the manifest check (scripts/manifests_check.sh) run afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'test.sh: %s\n' "$*" >&2; }

# shellcheck source=scripts/postgres.sh
. scripts/postgres.sh
# shellcheck source=scripts/python.sh
. scripts/python.sh

cleanup() {
    if [ -n "${PG_TMP:-}" ]; then
        stop_throwaway_postgres
    elif [ -n "${DATABASE_URL:-}" ] && command -v psql >/dev/null; then
        # On a server we were given, drop the per-test databases (only ours, by prefix).
        psql "$DATABASE_URL" -Atqc "SELECT datname FROM pg_database WHERE datname LIKE 'portcullis\_test\_%'" 2>/dev/null |
            while read -r db; do
                psql "$DATABASE_URL" -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true
            done
    fi
}
trap cleanup EXIT

if [ -z "${DATABASE_URL:-}" ]; then
    start_throwaway_postgres
else
    log "using PostgreSQL from DATABASE_URL"
    # The outage tests start a private cluster of their own from the server binaries.
    ensure_pg_bin >/dev/null || exit 1
fi

ensure_python_tools || exit 1

# Every integration test runs once per engine (SQLite and the PostgreSQL above).
cargo test --workspace --all-targets "$@"

# With a test name filter, only those tests; the whole command also runs the
# README's walk-through block by block against a server of its own, checks
# openapi.yaml against the running server on both engines, and checks the
# Kubernetes manifests.
if [ "$#" -eq 0 ]; then
    scripts/readme_check.sh
    scripts/manifests_check.sh
    scripts/api_check.sh
fi
