#!/usr/bin/env bash
# Mutation testing (cargo-mutants) of the modules that carry the security
# promises, each file checked only by the tests that cover it, so a run fits on
# a small machine. Not part of scripts/test.sh: every mutant is a rebuild.
#
#   scripts/mutants.sh                  # every entry below
#   scripts/mutants.sh lifecycle scope  # the named entries
#   MUTANTS_ARGS="--re is_live" scripts/mutants.sh refresh
#                                       # extra cargo-mutants options (here:
#                                       # only the mutants of matching functions)
#
# Needs `cargo install cargo-mutants`. Entries that run HTTP tests need
# DATABASE_URL (as scripts/test.sh). Results go to target/mutants/<entry>/
# (mutants.out/caught.txt, missed.txt, ...); a summary per entry is printed.
#
# Mutants are built in place (`cargo mutants --in-place`), in this tree and
# its target directory (CARGO_TARGET_DIR when set), so each one is an
# incremental rebuild of the package rather than a build of a fresh copy.
# cargo-mutants writes each mutant into the source file and puts the file
# back afterwards: do not edit the tree while it runs. The script checks that
# every mutated file is byte for byte what it was before its entry ran, and
# fails if not (e.g. after an interrupted run: `git diff` shows the mutant).
# Portcullis itself is built without debug information for these runs (its
# dependencies keep theirs, so they are not rebuilt): that halves each
# mutant's build on a small machine.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'mutants.sh: %s\n' "$*" >&2; }

if ! cargo mutants --version >/dev/null 2>&1; then
    log "cargo-mutants is not installed: cargo install cargo-mutants"
    exit 1
fi

# name | files | test targets (what is built for each mutant) | test name
# filters | cargo-mutants options of the entry (optional)
ENTRIES=(
    "lifecycle|src/keys/lifecycle.rs|--lib|keys::lifecycle"
    "chain|src/audit/chain.rs|--lib|audit::"
    "scope|src/oauth/scope.rs|--lib|oauth::scope"
    "audience|src/oauth/audience.rs|--lib|oauth::audience"
    "subject|src/certs/subject.rs|--lib|certs::"
    "verify|src/token/verify.rs|--lib|token::"
    # The family rules (liveness, reuse, narrowing, binding, lifetimes) are
    # pure functions with unit tests; the TokenServer methods that run them
    # against the store are checked by the HTTP tests of the grant.
    "refresh|src/token/refresh.rs src/oauth/refresh.rs|--lib|refresh::|--exclude-re TokenServer::"
    "refresh-server|src/oauth/refresh.rs|--lib --test=api|refresh:: introspection::an_active_refresh_token revocation::revoking_a_refresh_token mtls::a_spiffe_certificate_gets dpop::a_dpop_bound_refresh_family|--re TokenServer::"
    # lockout.rs is the counting and locking logic, covered whole by its unit
    # tests; the HTTP lockout tests (secrets::) check the wiring elsewhere.
    "lockout|src/protect/lockout.rs|--lib|protect::lockout"
    # The cache on a real SQLite store, its outages by closing the pool; the
    # HTTP tests (cache::, outage::) check the wiring.
    "credential-cache|src/clients/cache.rs|--lib|clients::cache"
)

wanted=("$@")
out_root="${CARGO_TARGET_DIR:-target}/mutants"
mkdir -p "$out_root"
status=0
for entry in "${ENTRIES[@]}"; do
    IFS='|' read -r name files targets filters own <<<"$entry"
    if [ "${#wanted[@]}" -gt 0 ] && [[ ! " ${wanted[*]} " =~ " $name " ]]; then
        continue
    fi
    # A unit-test run takes seconds: a minute means a mutant made it hang
    # (or quadratic). Entries with HTTP tests run every test binary, so a
    # mutant caught by a unit test still shows which HTTP tests catch it.
    timeout=60
    args=()
    if [[ " $targets " == *" --test="* ]]; then
        timeout=300
        args+=(--cargo-test-arg=--no-fail-fast)
    fi
    for f in $files; do args+=(--file "$f"); done
    for t in $targets; do args+=("--cargo-arg=$t"); done
    for p in dev test; do
        args+=("--cargo-arg=--config=profile.$p.package.portcullis.debug=0")
    done
    log "$name: $files (cargo test $targets -- $filters)"
    # shellcheck disable=SC2086 # the file names are words
    before=$(sha256sum $files)
    # shellcheck disable=SC2086 # the options and filters are words
    if ! cargo mutants --in-place --no-shuffle --baseline=skip --timeout "$timeout" \
        --output "$out_root/$name" "${args[@]}" ${own:-} ${MUTANTS_ARGS:-} -- -- $filters; then
        status=1
    fi
    # shellcheck disable=SC2086
    if [ "$(sha256sum $files)" != "$before" ]; then
        log "$name: a mutated file was left behind: see git diff -- $files"
        exit 2
    fi
    dir="$out_root/$name/mutants.out"
    count() { [ -f "$dir/$1.txt" ] && wc -l <"$dir/$1.txt" || echo 0; }
    printf '%-18s caught %4s  missed %4s  timeout %4s  unviable %4s\n' "$name" \
        "$(count caught)" "$(count missed)" "$(count timeout)" "$(count unviable)"
done
exit "$status"
