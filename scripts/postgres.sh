#!/usr/bin/env bash
# A private PostgreSQL on 127.0.0.1 for tests, the cluster chaos run and the benchmark: initdb in a directory of its
# own, loopback only, started and stopped by this script (nothing in /etc/postgresql is read or changed).
#   scripts/postgres.sh start [--fresh] | stop | status | url
# Env: SLIPWAY_PG_PORT (5480), SLIPWAY_PG_DIR (/tmp/slipway-postgres-$PORT), SLIPWAY_PG_TIMEOUT (60 s).
# The database `slipway` belongs to user `slipway`, password `slipway`; `url` prints postgres://slipway:slipway@...
set -euo pipefail
me=postgres.sh
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PORT=${SLIPWAY_PG_PORT:-5480}
DIR=${SLIPWAY_PG_DIR:-/tmp/slipway-postgres-$PORT}
TIMEOUT=${SLIPWAY_PG_TIMEOUT:-60}
DATA=$DIR/data
URL=postgres://slipway:slipway@127.0.0.1:$PORT/slipway

say() { echo "$me: $*"; }
die() { echo "$me: $*" >&2; exit 1; }

# The newest PostgreSQL server installed (Debian keeps each major version in its own directory).
bin_dir() {
  local dir
  dir=$(find /usr/lib/postgresql -maxdepth 2 -type d -name bin 2>/dev/null | sort -V | tail -n 1)
  [[ -n $dir && -x $dir/pg_ctl ]] || die "no PostgreSQL server installed (scripts/deps.sh postgres installs it)"
  echo "$dir"
}

# Runs a server binary as user postgres: PostgreSQL refuses to run as root.
as_postgres() { runuser -u postgres -- "$@"; }

running() { [[ -f $DATA/postmaster.pid ]] && as_postgres "$(bin_dir)/pg_ctl" -D "$DATA" status >/dev/null 2>&1; }

start() {
  local fresh=0 bin
  case ${1:-} in --fresh) fresh=1 ;; "") ;; *) die "unknown option: $1" ;; esac
  "$here/deps.sh" postgres >/dev/null
  bin=$(bin_dir)
  if running && ((!fresh)); then say "already running on 127.0.0.1:$PORT"; return 0; fi
  running && stop
  ((fresh)) && rm -rf "$DATA"
  mkdir -p "$DIR"
  chown postgres:postgres "$DIR"
  if [[ ! -f $DATA/PG_VERSION ]]; then
    local pwfile="$DIR/initdb.pw"
    echo slipway >"$pwfile"
    chown postgres:postgres "$pwfile"
    as_postgres "$bin/initdb" -D "$DATA" -U slipway --pwfile="$pwfile" --auth=scram-sha-256 -E UTF8 \
      --locale=C >"$DIR/initdb.log" 2>&1 || { cat "$DIR/initdb.log" >&2; die "initdb failed"; }
    rm -f "$pwfile"
    # Loopback only; the socket in our own directory, not /var/run/postgresql.
    printf '%s\n' "listen_addresses = '127.0.0.1'" "port = $PORT" "unix_socket_directories = '$DIR'" \
      "max_connections = 200" "fsync = on" "synchronous_commit = on" >>"$DATA/postgresql.conf"
  fi
  as_postgres "$bin/pg_ctl" -D "$DATA" -l "$DIR/server.log" -w -t "$TIMEOUT" start >/dev/null \
    || { tail -n 25 "$DIR/server.log" >&2; die "the server did not start"; }
  if ! PGPASSWORD=slipway "$bin/psql" -h 127.0.0.1 -p "$PORT" -U slipway -d postgres -qtAc \
    "SELECT 1 FROM pg_database WHERE datname = 'slipway'" | grep -q 1; then
    PGPASSWORD=slipway "$bin/createdb" -h 127.0.0.1 -p "$PORT" -U slipway slipway
  fi
  say "PostgreSQL running on 127.0.0.1:$PORT (data in $DATA): $URL"
}

stop() {
  [[ -f $DATA/postmaster.pid ]] || { say "not running"; return 0; }
  as_postgres "$(bin_dir)/pg_ctl" -D "$DATA" -m fast -w -t "$TIMEOUT" stop >/dev/null || die "could not stop the server"
  say "stopped"
}

[[ ${1:-} == url || $(id -u) -eq 0 ]] || die "must run as root (the server runs as user postgres)"
case ${1:-} in
  start) shift; start "$@" ;;
  stop) stop ;;
  status) if running; then say "running on 127.0.0.1:$PORT"; else say "not running"; exit 1; fi ;;
  url) echo "$URL" ;;
  *) die "usage: $0 start [--fresh]|stop|status|url" ;;
esac
