#!/usr/bin/env bash
# Start a throwaway PostgreSQL server for the multi-worker test, then run
# the command given as arguments with PRIVTUNE_TEST_POSTGRES_URL pointing at it.
#
#   bash .ci/postgres.sh make test
#
# Installs Debian's `postgresql` package when its binaries are missing. The
# server runs as the `postgres` user (it refuses root) from a temporary data
# folder, listens on 127.0.0.1 only, and is stopped when the command ends.
set -euo pipefail

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

if [ -z "$(pg_bin)" ]; then
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq postgresql >/dev/null
fi
BIN="$(pg_bin)"
PORT="${PRIVTUNE_TEST_POSTGRES_PORT:-54329}"
DATA="$(mktemp -d /tmp/privtune-pg.XXXXXX)"
RUN_AS=()
if [ "$(id -u)" -eq 0 ]; then
    chown postgres:postgres "$DATA"
    RUN_AS=(runuser -u postgres --)
fi

stop() { "${RUN_AS[@]}" "$BIN/pg_ctl" -D "$DATA/db" -m fast stop >/dev/null 2>&1 || true; rm -rf "$DATA"; }
trap stop EXIT

"${RUN_AS[@]}" "$BIN/initdb" -D "$DATA/db" -U postgres --auth=trust -E UTF8 >/dev/null
"${RUN_AS[@]}" "$BIN/pg_ctl" -D "$DATA/db" -l "$DATA/server.log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $PORT -k $DATA -c max_connections=200 -c fsync=off" start >/dev/null
"${RUN_AS[@]}" "$BIN/createdb" -h 127.0.0.1 -p "$PORT" -U postgres privtune_test

export PRIVTUNE_TEST_POSTGRES_URL="postgresql://postgres@127.0.0.1:$PORT/privtune_test"
echo "PostgreSQL $("$BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PORT for the multi-worker test"
"$@"
