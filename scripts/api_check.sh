#!/usr/bin/env bash
# The API check: schemathesis generates requests from openapi.yaml and sends
# them to a running server; any server error, any answer openapi.yaml does not
# describe, any valid request refused and any invalid request accepted fails
# the check. Run by scripts/test.sh, against SQLite and, when DATABASE_URL is
# set, against PostgreSQL (in a database of its own, dropped afterwards).
#
#   scripts/api_check.sh     # needs TEST_PYTHON (scripts/python.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'api_check.sh: %s\n' "$*" >&2; }

if [ -z "${TEST_PYTHON:-}" ]; then
    # shellcheck source=scripts/python.sh
    . scripts/python.sh
    ensure_python_tools || exit 1
fi
ST="$(dirname "$TEST_PYTHON")/st"

cargo build --quiet --bin portcullis
BIN="${CARGO_TARGET_DIR:-target}/debug/portcullis"

WORK=$(mktemp -d /tmp/portcullis-api-check.XXXXXX)
SERVER_PID=
PG_DB=
cleanup() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [ -n "$PG_DB" ]; then
        "$PSQL" "$DATABASE_URL" -qc "DROP DATABASE IF EXISTS \"$PG_DB\" WITH (FORCE)" >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
    "$TEST_PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Starts the server on $1 (a database URL) with a fresh KEK and journal, the
# per-address and per-client rate limits and the delay of failed
# authentications off (the check sends thousands of requests from one
# address), and waits until /readyz answers 200.
start_server() {
    local dir="$WORK/$2"
    mkdir -p "$dir"
    (umask 077 && head -c 32 /dev/urandom | base64 >"$dir/kek")
    PORT=$(free_port)
    BASE="http://127.0.0.1:$PORT"
    # Only the settings below: the server refuses unknown PORTCULLIS_*
    # variables left in the environment.
    local -a unset=()
    local name
    for name in $(compgen -e | grep '^PORTCULLIS_'); do unset+=(-u "$name"); done
    env "${unset[@]}" \
        PORTCULLIS_DATABASE_URL="$1" \
        PORTCULLIS_LISTEN="127.0.0.1:$PORT" \
        PORTCULLIS_ADMIN_TOKENS="$ADMIN_TOKEN" \
        PORTCULLIS_KEK_FILE="$dir/kek" \
        PORTCULLIS_AUDIT_JOURNAL_DIR="$dir/journal" \
        PORTCULLIS_RATE_LIMIT_IP_PER_SECOND=0 \
        PORTCULLIS_RATE_LIMIT_CLIENT_PER_SECOND=0 \
        PORTCULLIS_RATE_LIMIT_ADMIN_PER_SECOND=0 \
        PORTCULLIS_RATE_LIMIT_JWKS_PER_SECOND=0 \
        PORTCULLIS_LOCKOUT_THRESHOLD=0 \
        PORTCULLIS_AUTH_FAILURE_DELAY_MS=0 \
        PORTCULLIS_MAX_ACCESS_TOKEN_TTL=86400 \
        PORTCULLIS_LOG_LEVEL=warn \
        "$BIN" serve >"$dir/server.log" 2>&1 &
    SERVER_PID=$!
    local i
    for i in $(seq 1 300); do
        if "$TEST_PYTHON" - "$BASE/readyz" 2>/dev/null <<'PY'
import sys, urllib.request
sys.exit(0 if urllib.request.urlopen(sys.argv[1], timeout=1).status == 200 else 1)
PY
        then return 0; fi
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then break; fi
        sleep 0.1
    done
    log "the server did not become ready; its log:"
    cat "$dir/server.log" >&2
    return 1
}

stop_server() {
    kill "$SERVER_PID"
    wait "$SERVER_PID" || true
    SERVER_PID=
}

# Registers the client whose secret authenticates the generated /token,
# /introspect and /revoke requests (client_secret_basic).
register_client() {
    local answer
    answer=$("$TEST_PYTHON" - "$BASE" "$ADMIN_TOKEN" <<'PY'
import json, sys, urllib.request
base, token = sys.argv[1], sys.argv[2]
body = json.dumps({
    "client_id": "api-check",
    "grant_types": ["client_credentials", "refresh_token"],
    "scope": "orders.read orders.write",
    "allowed_audiences": ["https://api.example.com/orders"],
    "allow_introspection": True,
}).encode()
request = urllib.request.Request(base + "/admin/clients", data=body, method="POST", headers={
    "Authorization": "Bearer " + token, "Content-Type": "application/json"})
client = json.load(urllib.request.urlopen(request, timeout=10))
print(client["client_id"], client["client_secret"])
PY
    )
    export API_CHECK_CLIENT_ID="${answer% *}"
    export API_CHECK_CLIENT_SECRET="${answer#* }"
}

check() { # $1 = engine name, $2 = database URL
    log "$1: schemathesis against openapi.yaml"
    start_server "$2" "$1"
    register_client
    local started=$SECONDS
    if ! timeout 600 "$ST" --config-file scripts/schemathesis.toml run openapi.yaml --url "$BASE" \
        --report junit --report-junit-path "$WORK/$1-junit.xml" >"$WORK/$1.txt" 2>&1; then
        cat "$WORK/$1.txt" | cut -c1-2000 >&2
        log "$1: the server and openapi.yaml disagree (above); server log:"
        tail -n 50 "$WORK/$1/server.log" >&2
        return 1
    fi
    grep -E '^ *[0-9]+ generated|passed|in [0-9.]+s' "$WORK/$1.txt" | tail -n 2 >&2 || true
    log "$1: passed in $((SECONDS - started)) s"
    stop_server
}

ADMIN_TOKEN="api-check-$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')"
export API_CHECK_ADMIN_TOKEN="$ADMIN_TOKEN"

check sqlite "sqlite://$WORK/sqlite/portcullis.db"

if [ -n "${DATABASE_URL:-}" ]; then
    PSQL=$(command -v psql || ls /usr/lib/postgresql/*/bin/psql 2>/dev/null | sort -V | tail -n 1)
    [ -n "$PSQL" ] || { log "psql is needed for the PostgreSQL run"; exit 1; }
    PG_DB="portcullis_test_api_check_$$"
    "$PSQL" "$DATABASE_URL" -qc "CREATE DATABASE \"$PG_DB\"" >/dev/null
    check postgres "${DATABASE_URL%/*}/$PG_DB"
fi
