# Sourced by scripts/test.sh and scripts/bench.sh: start_throwaway_postgres
# starts a private PostgreSQL cluster from the system's binaries (installing
# them with apt when missing and running as root), exports DATABASE_URL, and
# registers its removal on exit.

pg_log() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; }

find_pg_bin() {
    local dir
    for dir in "$(dirname "$(command -v pg_ctl 2>/dev/null || echo /nonexistent/x)")" \
        $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
            echo "$dir"
            return 0
        fi
    done
    return 1
}

# Prints the directory of the PostgreSQL server binaries, installing them with
# apt when they are missing and we are root; otherwise exits with a message.
ensure_pg_bin() {
    local bin
    if ! bin=$(find_pg_bin); then
        if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
            pg_log "PostgreSQL is not installed; installing it with apt-get"
            DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
            bin=$(find_pg_bin) || { pg_log "PostgreSQL binaries still not found after installing"; exit 1; }
        else
            pg_log "PostgreSQL server binaries (initdb, pg_ctl) were not found."
            pg_log "Install PostgreSQL (e.g. 'sudo apt-get install postgresql')."
            exit 1
        fi
    fi
    echo "$bin"
}

start_throwaway_postgres() {
    local bin
    bin=$(ensure_pg_bin) || exit 1

    PG_TMP=$(mktemp -d /tmp/portcullis-pg.XXXXXX)
    local port
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo $((20000 + RANDOM % 20000)))

    # PostgreSQL refuses to run as root: run it as the postgres system user then.
    local -a as_user=()
    if [ "$(id -u)" -eq 0 ]; then
        id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
        chown postgres "$PG_TMP"
        as_user=(runuser -u postgres --)
    fi
    "${as_user[@]}" "$bin/initdb" -D "$PG_TMP/data" -U postgres -A trust --no-sync -E UTF8 >"$PG_TMP/initdb.log" 2>&1 ||
        { cat "$PG_TMP/initdb.log" >&2; exit 1; }
    "${as_user[@]}" "$bin/pg_ctl" -D "$PG_TMP/data" -l "$PG_TMP/server.log" -w -t 60 \
        -o "-p $port -k $PG_TMP -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400" \
        start >/dev/null || { cat "$PG_TMP/server.log" >&2; exit 1; }
    PG_STOP=("${as_user[@]}" "$bin/pg_ctl" -D "$PG_TMP/data" -m immediate stop)
    export DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
    pg_log "throwaway PostgreSQL from $bin on 127.0.0.1:$port"
}

stop_throwaway_postgres() {
    if [ -n "${PG_TMP:-}" ]; then
        "${PG_STOP[@]}" >/dev/null 2>&1 || true
        rm -rf "$PG_TMP"
    fi
}
