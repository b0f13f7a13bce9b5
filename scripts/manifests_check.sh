#!/usr/bin/env bash
# Checks the Kubernetes manifests in deploy/kubernetes offline: yamllint, then
# scripts/manifests/check.py (references resolve, every resource validates
# strictly against the Kubernetes schemas with kubernetes-validate, each
# overlay built with `kubectl kustomize` or `kustomize build` when installed
# and checked as a whole). Run by scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'manifests_check.sh: %s\n' "$*" >&2; }

if [ -z "${TEST_PYTHON:-}" ]; then
    # shellcheck source=scripts/python.sh
    . scripts/python.sh
    ensure_python_tools || exit 1
fi
BIN="$(dirname "$TEST_PYTHON")"

"$BIN/yamllint" --strict -c scripts/manifests/yamllint.yaml deploy/kubernetes
"$TEST_PYTHON" scripts/manifests/check.py deploy/kubernetes
log "deploy/kubernetes: lint and validation passed"
