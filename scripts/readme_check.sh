#!/usr/bin/env bash
# Runs the README's walk-through as a reader would: every fenced ```sh block
# preceded by the line <!-- readme-check --> is run, in order, in one bash
# shell (so variables a block sets reach the next ones), against a server
# this script starts the way "The two commands" does, in a temporary
# directory (never the repository's keys/ or data/). A block that fails, or
# a curl that gets an HTTP error, fails the check.
#
#   scripts/readme_check.sh                 # builds the debug binary first
#   README_CHECK_BIN=target/release/portcullis scripts/readme_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

log() { printf 'readme_check: %s\n' "$*" >&2; }

# A reader's fresh shell: no settings from the caller's environment (the
# test command's DATABASE_URL would move the walk-through to PostgreSQL).
while read -r variable; do unset "$variable"; done < <(compgen -e | grep -E '^(PORTCULLIS_|DATABASE_URL$)' || true)

for tool in curl jq; do
    command -v "$tool" >/dev/null || { log "needs $tool (the README's blocks use it)"; exit 1; }
done

if [ -z "${README_CHECK_BIN:-}" ]; then
    cargo build --quiet --bin portcullis
    README_CHECK_BIN="${CARGO_TARGET_DIR:-$repo/target}/debug/portcullis"
fi
README_CHECK_BIN=$(realpath "$README_CHECK_BIN")

work=$(mktemp -d)
server_pid=
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

# The blocks, in order, with the README's address replaced by a free port.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
awk '
    /^<!-- readme-check -->$/ { marked = 1; next }
    marked && /^```sh$/ { inside = 1; marked = 0; n++; printf "\nreadme_block %d\n", n; next }
    inside && /^```$/ { inside = 0; next }
    inside { print; next }
    { marked = 0 }
' README.md | sed "s/127\.0\.0\.1:8080/127.0.0.1:$port/g" > "$work/walkthrough.sh"
blocks=$(grep -c '^readme_block ' "$work/walkthrough.sh" || true)
[ "$blocks" -gt 0 ] || { log "no block of README.md is marked with <!-- readme-check -->"; exit 1; }

# `portcullis` on PATH, as after `cargo install --path .`.
mkdir -p "$work/bin" "$work/run"
ln -s "$README_CHECK_BIN" "$work/bin/portcullis"
export PATH="$work/bin:$PATH"
cd "$work/run"

# The server of "The two commands" (SQLite under ./data, KEK under ./keys).
export PORTCULLIS_ADMIN_TOKENS=dev-admin-token-change-me
PORTCULLIS_LISTEN=127.0.0.1:$port PORTCULLIS_LOG_LEVEL=warn portcullis serve 2>"$work/server.log" &
server_pid=$!
for _ in $(seq 1 300); do
    if PORTCULLIS_LISTEN=127.0.0.1:$port portcullis health >/dev/null 2>&1; then break; fi
    kill -0 "$server_pid" 2>/dev/null || { log "the server did not start:"; cat "$work/server.log" >&2; exit 1; }
    sleep 0.2
done
PORTCULLIS_LISTEN=127.0.0.1:$port portcullis health >/dev/null || { log "the server is not ready"; exit 1; }
unset PORTCULLIS_ADMIN_TOKENS

cat > "$work/prelude.sh" <<'PRELUDE'
set -euo pipefail
# An HTTP error status fails the block, with the answer shown.
curl() { command curl --fail-with-body "$@"; }
readme_block() { printf 'readme_check: block %s\n' "$1" >&2; }
PRELUDE
log "running $blocks blocks of README.md against a server on 127.0.0.1:$port in $work/run"
if ! bash -c "source '$work/prelude.sh'; source '$work/walkthrough.sh'" >"$work/out.log" 2>&1; then
    log "a README block failed; its output:"
    tail -n 40 "$work/out.log" >&2
    log "server log:"
    tail -n 20 "$work/server.log" >&2
    exit 1
fi
log "all $blocks blocks ran"
