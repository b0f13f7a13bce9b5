# shellcheck shell=bash
# Python tools the tests use (an independent JOSE implementation, API and
# manifest checkers): a virtual environment under the cargo target directory,
# (re)installed from scripts/requirements-test.txt whenever that file changes.
# Sourced by scripts/test.sh; exports TEST_PYTHON_FOR_PORTCULLIS (not PORTCULLIS_*:
# that prefix is the server's configuration, and an unknown key there fails it).

ensure_python_tools() {
    if ! command -v python3 >/dev/null || ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            log "installing python3 and python3-venv through apt"
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3 python3-venv >/dev/null ||
                { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3 python3-venv >/dev/null; }
        else
            log "python3 with the venv module is needed for the interoperability tests: install python3 and python3-venv (e.g. sudo apt-get install python3 python3-venv)"
            return 1
        fi
    fi
    local target="${CARGO_TARGET_DIR:-target}"
    mkdir -p "$target"
    local venv; venv="$(cd "$target" && pwd)/pyenv"
    local want; want=$(sha256sum scripts/requirements-test.txt | cut -d' ' -f1)
    if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.requirements" 2>/dev/null)" != "$want" ]; then
        log "preparing the Python test tools in $venv"
        rm -rf "$venv"
        python3 -m venv "$venv" &&
            "$venv/bin/pip" install -q --disable-pip-version-check -r scripts/requirements-test.txt ||
            { log "could not install scripts/requirements-test.txt from PyPI"; return 1; }
        echo "$want" >"$venv/.requirements"
    fi
    export TEST_PYTHON_FOR_PORTCULLIS="$venv/bin/python"
}
