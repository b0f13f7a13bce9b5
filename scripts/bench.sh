#!/usr/bin/env bash
# The HTTP benchmark: a release build of the server on one core, wrk on the
# other, 32 keep-alive connections, against SQLite and PostgreSQL. Reports
# req/s, p50, p99, errors and server RSS per scenario; a scenario with any
# non-2xx answer is reported INVALID instead of a number. In the same run it
# measures the floor program (../shared/bench/floor: the irreducible work of a
# client-credentials request) and prints Portcullis /token as a fraction of it.
# Not a test: CI does not run it. Needs wrk (apt-get install wrk; installed
# here when run as root), curl and python3.
#
#   BENCH_FLOOR_DIR=path/to/floor     # default ../shared/bench/floor; absent: no floor row
#   scripts/bench.sh                 # both engines, 10 s per scenario
#   BENCH_SECONDS=30 scripts/bench.sh
#   BENCH_ENGINES=sqlite scripts/bench.sh
#   BENCH_BIN=/tmp/portcullis-before scripts/bench.sh   # this binary instead of building one
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/postgres.sh
. scripts/postgres.sh

SECONDS_PER_RUN=${BENCH_SECONDS:-10}
ENGINES=${BENCH_ENGINES:-"sqlite postgres"}
CONNECTIONS=32
ADMIN=bench-admin-token-0123456789
export BENCH_DIR="$PWD/bench"
WORK=$(mktemp -d /tmp/portcullis-bench.XXXXXX)
SERVER_PID=""

log() { printf 'bench.sh: %s\n' "$*" >&2; }
cleanup() {
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
    stop_throwaway_postgres
    rm -rf "$WORK"
}
trap cleanup EXIT

if ! command -v wrk >/dev/null; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        log "installing wrk with apt-get"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
    else
        log "wrk is not installed: install it with 'apt-get install wrk' (Debian/Ubuntu) and run again"; exit 1
    fi
fi
command -v jq >/dev/null || { [ "$(id -u)" -eq 0 ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq jq >/dev/null; } || true

TARGET="${CARGO_TARGET_DIR:-$PWD/target}"
if [ -n "${BENCH_BIN:-}" ]; then
    BIN=$BENCH_BIN
    [ -x "$BIN" ] || { log "BENCH_BIN=$BIN is not an executable"; exit 1; }
else
    cargo build --release --quiet
    BIN="$TARGET/release/portcullis"
fi
FLOOR_DIR=${BENCH_FLOOR_DIR:-"$PWD/../shared/bench/floor"}
FLOOR_BIN=""
if [ -f "$FLOOR_DIR/Cargo.toml" ]; then
    cargo build --release --quiet --manifest-path "$FLOOR_DIR/Cargo.toml" --target-dir "$TARGET/floor"
    FLOOR_BIN="$TARGET/floor/release/asfloor"
else
    log "no floor program at $FLOOR_DIR (set BENCH_FLOOR_DIR): the fraction of the floor is not reported"
fi
CORES=$(nproc)
if [ "$CORES" -ge 2 ]; then SERVER_CPU=(taskset -c 0); LOAD_CPU=(taskset -c 1); else SERVER_CPU=(); LOAD_CPU=(); fi

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$SERVER_PID/stat"; }
rss_mb() { awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$SERVER_PID/status"; }
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

start_server() { # $1 = database URL
    local dir="$WORK/run-$RANDOM"
    mkdir -p "$dir"
    (cd "$dir" && PORTCULLIS_DATABASE_URL="$1" PORTCULLIS_LISTEN=127.0.0.1:18099 PORTCULLIS_ADMIN_TOKENS=$ADMIN \
        PORTCULLIS_KEK_GENERATE=true PORTCULLIS_WORKERS=1 PORTCULLIS_LOG_LEVEL=warn \
        PORTCULLIS_RATE_LIMIT_IP_PER_SECOND=0 PORTCULLIS_RATE_LIMIT_CLIENT_PER_SECOND=0 \
        PORTCULLIS_RATE_LIMIT_ADMIN_PER_SECOND=0 PORTCULLIS_RATE_LIMIT_JWKS_PER_SECOND=0 PORTCULLIS_LOCKOUT_THRESHOLD=0 \
        exec "${SERVER_CPU[@]}" "$BIN" serve >"$dir/server.log" 2>&1) &
    SERVER_PID=$!
    for _ in $(seq 100); do curl -fs http://127.0.0.1:18099/healthz >/dev/null && return 0; sleep 0.1; done
    cat "$dir/server.log" >&2; exit 1
}

register() { # $1 = JSON body; prints "id secret"
    curl -fs http://127.0.0.1:18099/admin/clients -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' -d "$1" |
        python3 -c 'import json,sys; c=json.load(sys.stdin); print(c["client_id"], c["client_secret"])'
}

# Waits (up to 60 s) until the audit events of earlier scenarios are in the
# database, so that no scenario pays for the one before it (registration
# leaves thousands of admin events to apply).
settle() {
    [ "$ENGINE" = none ] && return 0
    local pending
    for _ in $(seq 600); do
        pending=$(curl -fs http://127.0.0.1:18099/metrics -H "Authorization: Bearer $ADMIN" |
            awk '/^portcullis_audit_journal_pending_events / { print $2 }')
        [ "${pending:-0}" = 0 ] && return 0
        sleep 0.1
    done
    log "$ENGINE: $pending audit events still pending after 60 s"
}

run() { # $1 = scenario, rest = wrk arguments; prints a table row
    local name=$1; shift
    local out
    settle
    # A short warm-up first (connections, caches), not measured.
    "${LOAD_CPU[@]}" wrk -t1 -c$CONNECTIONS -d2s "$@" >/dev/null 2>&1 || true
    out=$("${LOAD_CPU[@]}" wrk -t1 -c$CONNECTIONS -d"${SECONDS_PER_RUN}s" --latency "$@" 2>&1 | tail -n 1)
    local rss; rss=$(rss_mb)
    local bad; bad=$(echo "$out" | json '["non2xx"]')
    local sock; sock=$(echo "$out" | json '["socket_errors"]')
    if [ "$bad" != "0" ] || [ "$sock" != "0" ]; then
        printf '| %s | %s | INVALID (%s non-2xx, %s socket errors) | | | | %s |\n' "$ENGINE" "$name" "$bad" "$sock" "$rss"
    else
        printf '| %s | %s | %s | %s | %s | 0 | %s |\n' "$ENGINE" "$name" "$(echo "$out" | json '["rps"]')" \
            "$(echo "$out" | json '["p50_ms"]')" "$(echo "$out" | json '["p99_ms"]')" "$rss"
    fi
    echo "$out" > "$WORK/last.json"
}

# The audit journal's group commits so far: "syncs events seconds" (from /metrics).
# The req/s of the last run() (also when it was INVALID: check its row).
last_rps() { json '["rps"]' <"$WORK/last.json"; }

# The floor program on the server's core: one row, and FLOOR_RPS for the fraction.
FLOOR_RPS=""
run_floor() {
    [ -n "$FLOOR_BIN" ] || return 0
    SECRET_MODE=sha256 WORKERS=1 AS_PORT=3100 "${SERVER_CPU[@]}" "$FLOOR_BIN" >"$WORK/floor.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:3100/ && break; sleep 0.1; done
    BENCH_AUTH="Basic $(printf bench-client:bench-secret | base64 -w0)" BENCH_BODY="grant_type=client_credentials" \
        run "floor program /token (same machine, same run)" -s bench/post.lua http://127.0.0.1:3100/token
    FLOOR_RPS=$(last_rps)
    kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
}

# A known client with half its requests carrying a wrong secret: req/s of
# all answers; valid when every answer is 200 or 401 and about half are 401.
run_half_wrong() { # $1 = id, $2 = secret
    printf 'Basic %s\nBasic %s\n' "$(printf '%s:%s' "$1" "$2" | base64 -w0)" \
        "$(printf '%s:%s' "$1" "wrong-secret" | base64 -w0)" >"$WORK/half"
    local out rss busy ticks
    settle
    "${LOAD_CPU[@]}" wrk -t1 -c$CONNECTIONS -d2s -s bench/rotate.lua http://127.0.0.1:18099/token >/dev/null 2>&1 || true
    ticks=$(cpu_ticks)
    out=$(BENCH_AUTH_FILE="$WORK/half" "${LOAD_CPU[@]}" wrk -t1 -c$CONNECTIONS -d"${SECONDS_PER_RUN}s" --latency \
        -s bench/rotate.lua http://127.0.0.1:18099/token 2>&1 | tail -n 1)
    rss=$(rss_mb)
    # Each wrong secret is answered auth_failure_delay_ms after it arrived, and
    # every connection waits for its answers: the rate is bounded by the delay,
    # so the server core's busy share is what shows the cost of a wrong secret.
    busy=$(awk -v a="$ticks" -v b="$(cpu_ticks)" -v hz="$(getconf CLK_TCK)" -v s="$SECONDS_PER_RUN" 'BEGIN { printf "%.0f", 100 * (b - a) / hz / s }')
    local share; share=$(echo "$out" | python3 -c 'import json,sys; r=json.load(sys.stdin); print(round(r["non2xx"] / max(1, r["requests"]), 2))')
    printf '| %s | %s | %s | %s | %s | %s non-2xx (401); server core %s %% busy | %s |\n' "$ENGINE" "/token, one client, half the requests with a wrong secret" \
        "$(echo "$out" | json '["rps"]')" "$(echo "$out" | json '["p50_ms"]')" "$(echo "$out" | json '["p99_ms"]')" "$share" "$busy" "$rss"
}

journal_totals() {
    curl -fs http://127.0.0.1:18099/metrics -H "Authorization: Bearer $ADMIN" | awk '
        /^portcullis_audit_journal_sync_seconds_count/ { n = $2 }
        /^portcullis_audit_journal_sync_seconds_sum/ { t = $2 }
        /^portcullis_audit_journal_synced_events_total/ { e = $2 }
        END { printf "%d %d %f\n", n, e, t }'
}

# What durable audit cost during the last scenario: syncs, events per sync, mean sync time.
journal_report() { # $1 = totals before the scenario
    local n0 e0 t0 n1 e1 t1
    read -r n0 e0 t0 <<<"$1"
    read -r n1 e1 t1 <<<"$(journal_totals)"
    awk -v n="$((n1 - n0))" -v e="$((e1 - e0))" -v t0="$t0" -v t1="$t1" -v eng="$ENGINE" 'BEGIN {
        if (n > 0) printf "bench.sh: %s audit journal: %d group commits, %.1f events each, %.3f ms per write+fdatasync\n", eng, n, e / n, (t1 - t0) * 1000 / n > "/dev/stderr" }'
}

echo "| engine | scenario | req/s | p50 ms | p99 ms | errors | server RSS MB |"
echo "|---|---|---|---|---|---|---|"
ENGINE=none
run_floor
for ENGINE in $ENGINES; do
    if [ "$ENGINE" = postgres ]; then
        [ -n "${DATABASE_URL:-}" ] || start_throwaway_postgres
        DB="$DATABASE_URL"
        psql "$DB" -qc "DROP DATABASE IF EXISTS portcullis_bench" -c "CREATE DATABASE portcullis_bench" >/dev/null
        DB="${DB%/*}/portcullis_bench"
    else
        DB="sqlite://$WORK/bench-$RANDOM.db"
    fi
    start_server "$DB"
    printf '| %s | idle | | | | | %s |\n' "$ENGINE" "$(rss_mb)"

    read -r ID SECRET < <(register '{"scope":"read write","allowed_audiences":["https://api.example.com"]}')
    read -r RS RS_SECRET < <(register '{"allowed_audiences":["https://api.example.com"],"allow_introspection":true}')
    export BENCH_AUTH="Basic $(printf '%s:%s' "$ID" "$SECRET" | base64 -w0)"
    export BENCH_BODY="grant_type=client_credentials"
    BEFORE=$(journal_totals)
    run "/token, one client (Basic, keep-alive)" -s bench/post.lua http://127.0.0.1:18099/token
    journal_report "$BEFORE"
    TOKEN_RPS=$(last_rps)
    if [ -n "$FLOOR_RPS" ] && [ -n "$TOKEN_RPS" ]; then
        awk -v p="$TOKEN_RPS" -v f="$FLOOR_RPS" -v e="$ENGINE" 'BEGIN { printf "bench.sh: %s /token is %.0f %% of the floor (%.0f of %.0f req/s, same run)\n", e, 100 * p / f, p, f > "/dev/stderr" }'
    fi

    log "registering 1000 clients"
    : >"$WORK/auths"
    for _ in $(seq 1000); do
        read -r CID CSECRET < <(register '{"allowed_audiences":["https://api.example.com"]}')
        printf 'Basic %s\n' "$(printf '%s:%s' "$CID" "$CSECRET" | base64 -w0)" >>"$WORK/auths"
    done
    export BENCH_AUTH_FILE="$WORK/auths"
    # One pass so every client is in the cache, as in steady state.
    "${LOAD_CPU[@]}" wrk -t1 -c8 -d60s -s bench/rotate.lua http://127.0.0.1:18099/token >/dev/null 2>&1 &
    WARM=$!; sleep 25; kill $WARM 2>/dev/null || true; wait $WARM 2>/dev/null || true
    run "/token, 1000 clients in rotation" -s bench/rotate.lua http://127.0.0.1:18099/token

    run "JWKS" -s bench/get.lua http://127.0.0.1:18099/.well-known/jwks.json

    TOKEN=$(curl -fs http://127.0.0.1:18099/token -u "$ID:$SECRET" -d grant_type=client_credentials | json '["access_token"]')
    export BENCH_AUTH="Basic $(printf '%s:%s' "$RS" "$RS_SECRET" | base64 -w0)"
    export BENCH_BODY="token=$TOKEN"
    run "introspection of a JWT" -s bench/post.lua http://127.0.0.1:18099/introspect

    export BENCH_AUTH="Bearer $ADMIN" BENCH_TYPE=application/json BENCH_BODY='{"allowed_audiences":["https://api.example.com"]}'
    run "admin registration" -s bench/post.lua http://127.0.0.1:18099/admin/clients
    unset BENCH_TYPE

    # Valid clients while a second load floods wrong secrets (a SHA-256 check each for a generated secret).
    export BENCH_BODY="grant_type=client_credentials"
    settle
    BENCH_AUTH="Basic $(printf '%s:%s' "$ID" "wrong-secret" | base64 -w0)" \
        "${LOAD_CPU[@]}" wrk -t1 -c32 -d"$((SECONDS_PER_RUN + 4))s" --timeout 10s \
        -s bench/post.lua http://127.0.0.1:18099/token >/dev/null 2>&1 &
    FLOOD=$!
    sleep 2
    export BENCH_AUTH="Basic $(printf '%s:%s' "$ID" "$SECRET" | base64 -w0)"
    run "/token, one client, during a wrong-secret flood" -s bench/post.lua http://127.0.0.1:18099/token
    kill $FLOOD 2>/dev/null || true; wait $FLOOD 2>/dev/null || true
    FLOODED_RPS=$(last_rps)
    if [ -n "$FLOODED_RPS" ] && [ -n "$TOKEN_RPS" ]; then
        awk -v a="$FLOODED_RPS" -v b="$TOKEN_RPS" -v e="$ENGINE" 'BEGIN { printf "bench.sh: %s /token during the flood is %.0f %% of unflooded\n", e, 100 * a / b > "/dev/stderr" }'
    fi

    run_half_wrong "$ID" "$SECRET"

    kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
done
