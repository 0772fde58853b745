#!/usr/bin/env bash
# Start the services the test suite needs, unless something already answers on their ports:
#   PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth over local TCP, database "test")
#   Redis on 127.0.0.1:6379 (daemonized, no persistence)
# Idempotent: safe to run again. Installs with apt-get (Debian/Ubuntu) when a server is missing. Runs as root
# or through passwordless sudo. Trust auth is for throwaway CI machines only; never run this on a shared host.
set -euo pipefail

log() { printf 'services: %s\n' "$*"; }
die() { printf 'services: error: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        die "need root or passwordless sudo to run: $*"
    fi
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
    local port=$1 tries=$2 i
    for ((i = 0; i < tries; i++)); do
        port_open "$port" && return 0
        sleep 1
    done
    die "nothing answers on 127.0.0.1:$port after ${tries}s"
}

APT_UPDATED=0
apt_install() {
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install $* by hand"
    if [ "$APT_UPDATED" -eq 0 ]; then
        as_root apt-get update -q
        APT_UPDATED=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
}

start_postgres() {
    if port_open 5432; then
        log "postgresql: already answering on 127.0.0.1:5432"
    else
        command -v pg_lsclusters >/dev/null 2>&1 || apt_install postgresql postgresql-client
        local ver name
        ver=$(pg_lsclusters -h | awk 'NR == 1 { print $1 }')
        name=$(pg_lsclusters -h | awk 'NR == 1 { print $2 }')
        if [ -z "$ver" ]; then
            ver=$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -n 1)
            [ -n "$ver" ] || die "no PostgreSQL version found under /usr/lib/postgresql"
            name=main
            as_root pg_createcluster "$ver" "$name"
        fi
        local hba="/etc/postgresql/$ver/$name/pg_hba.conf"
        if ! as_root grep -q '^# bartizan-ci' "$hba"; then
            # First matching line wins, so the trust lines go on top.
            local tmp
            tmp=$(mktemp)
            {
                printf '%s\n' '# bartizan-ci: trust local TCP connections (tests only)' \
                    'host all all 127.0.0.1/32 trust' 'host all all ::1/128 trust'
                as_root cat "$hba"
            } >"$tmp"
            as_root cp "$tmp" "$hba"  # cp onto the existing file keeps its owner and mode
            rm -f "$tmp"
        fi
        log "postgresql: starting cluster $ver/$name"
        as_root pg_ctlcluster "$ver" "$name" start || as_root pg_ctlcluster "$ver" "$name" restart
        wait_port 5432 30
    fi
    if command -v psql >/dev/null 2>&1; then
        if [ "$(psql -h 127.0.0.1 -U postgres -d postgres -Atc "SELECT 1 FROM pg_database WHERE datname = 'test'")" != 1 ]; then
            psql -h 127.0.0.1 -U postgres -d postgres -qc 'CREATE DATABASE test'
            log "postgresql: created database test"
        fi
        psql -h 127.0.0.1 -U postgres -d test -Atc 'SELECT 1' >/dev/null || die "cannot connect to database test as postgres"
        log "postgresql: ready (database test)"
    else
        log "postgresql: psql not installed; not checking database test"
    fi
}

start_redis() {
    if port_open 6379; then
        log "redis: already answering on 127.0.0.1:6379"
    else
        command -v redis-server >/dev/null 2>&1 || apt_install redis-server
        log "redis: starting"
        as_root redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no --dir /tmp
        wait_port 6379 15
    fi
    if command -v redis-cli >/dev/null 2>&1; then
        [ "$(redis-cli -h 127.0.0.1 -p 6379 ping)" = PONG ] || die "redis does not answer PING"
    fi
    log "redis: ready"
}

start_postgres
start_redis
