#!/usr/bin/env bash
# Brings up a local TimescaleDB for tests and benchmarks, idempotently.
#
#   scripts/timescaledb.sh up      install if needed, init if needed, start if needed; prints DATABASE_URL
#   scripts/timescaledb.sh stop    stop the server (data kept)
#   scripts/timescaledb.sh start   start it again
#   scripts/timescaledb.sh url     print the DATABASE_URL
#   scripts/timescaledb.sh psql    open psql (as superuser) on it
#
# Debian 12 has no TimescaleDB package and Debian 13's needs glibc >= 2.38, so on
# Debian 12 the server runs chrooted in a minimal Debian 13 root built by mmdebstrap;
# on Debian 13 the packages install directly. Either way it listens on 127.0.0.1 only.
set -euo pipefail

TSDB_HOME="${TSDB_HOME:-/var/tmp/cardata-gateway-tsdb}"
TSDB_PORT="${TSDB_PORT:-55432}"
TSDB_USER="${TSDB_USER:-cardata}"
TSDB_PASSWORD="${TSDB_PASSWORD:-cardata}"
TSDB_DB="${TSDB_DB:-cardata}"
# For a throwaway test cluster only (see README): TSDB_FAST=1 turns fsync off.
TSDB_FAST="${TSDB_FAST:-0}"
MIRROR="${TSDB_MIRROR:-}"

ROOT="$TSDB_HOME/root"          # the chroot (Debian 12 hosts); unused on Debian 13
# Data directory as seen by the server; another one (with another TSDB_PORT) runs a second,
# independent cluster from the same installation, e.g. a young one for a test run.
DATA_IN="${TSDB_DATA:-/var/lib/cardata-tsdb}"
PG_BIN_IN="/usr/lib/postgresql/17/bin"

log() { echo "[timescaledb] $*" >&2; }

os_version() { . /etc/os-release; echo "${VERSION_ID:-0}"; }

native() { [ "$(os_version)" -ge 13 ] 2>/dev/null; }

# Runs a command as the postgres user, inside the chroot when there is one.
as_pg() {
  if native; then
    runuser -u postgres -- env -i PATH=/usr/bin:/bin LANG=C.UTF-8 LC_ALL=C.UTF-8 "$@"
  else
    chroot "$ROOT" runuser -u postgres -- env -i PATH=/usr/bin:/bin LANG=C.UTF-8 LC_ALL=C.UTF-8 "$@"
  fi
}

host_path() { if native; then echo "$1"; else echo "$ROOT$1"; fi; }

pick_mirror() {
  if [ -n "$MIRROR" ]; then echo "$MIRROR"; return; fi
  local m
  m=$(grep -hoE 'https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | head -1 | tr -d ' ' || true)
  if [ -z "$m" ]; then
    m=$(grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -E '/debian/?$' | head -1 || true)
  fi
  echo "${m:-http://deb.debian.org/debian}"
}

install() {
  if native; then
    if [ -x "$PG_BIN_IN/postgres" ] && [ -f /usr/share/postgresql/17/extension/timescaledb.control ]; then return; fi
    log "installing postgresql-17 and timescaledb from Debian packages"
    mkdir -p /etc/postgresql-common
    grep -q '^create_main_cluster' /etc/postgresql-common/createcluster.conf 2>/dev/null \
      || echo 'create_main_cluster = false' >> /etc/postgresql-common/createcluster.conf
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql-17 postgresql-17-timescaledb >/dev/null
    return
  fi
  if [ -x "$ROOT$PG_BIN_IN/postgres" ] && [ -f "$ROOT/usr/share/postgresql/17/extension/timescaledb.control" ]; then return; fi
  log "building a Debian 13 root with postgresql-17 + timescaledb in $ROOT (about 30 s)"
  if ! command -v mmdebstrap >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap debian-archive-keyring >/dev/null
  fi
  rm -rf "$ROOT.tmp"
  mkdir -p "$TSDB_HOME"
  local mirror; mirror=$(pick_mirror)
  mmdebstrap --quiet --mode=root --variant=apt \
    --include=postgresql-17,postgresql-17-timescaledb \
    trixie "$ROOT.tmp" "deb $mirror trixie main" >&2
  rm -rf "$ROOT"
  mv "$ROOT.tmp" "$ROOT"
}

init_cluster() {
  if [ -f "$(host_path "$DATA_IN")/PG_VERSION" ]; then return; fi
  log "initialising the cluster"
  local data; data=$(host_path "$DATA_IN")
  mkdir -p "$data"
  if native; then chown postgres:postgres "$data"; else chroot "$ROOT" chown postgres:postgres "$DATA_IN"; fi
  local pwfile_in="/tmp/cardata-tsdb-pw"
  printf '%s\n' "$TSDB_PASSWORD" > "$(host_path "$pwfile_in")"
  chmod 644 "$(host_path "$pwfile_in")"
  as_pg "$PG_BIN_IN/initdb" -D "$DATA_IN" --locale=C.UTF-8 --encoding=UTF8 \
    --auth-local=trust --auth-host=scram-sha-256 -U postgres --pwfile="$pwfile_in" >/dev/null
  rm -f "$(host_path "$pwfile_in")"
  {
    echo "listen_addresses = '127.0.0.1'"
    echo "port = $TSDB_PORT"
    echo "unix_socket_directories = '/tmp'"
    echo "shared_preload_libraries = 'timescaledb'"
    echo "timescaledb.telemetry_level = off"
    echo "dynamic_shared_memory_type = sysv"
    echo "max_connections = 300"
    echo "shared_buffers = 256MB"
    echo "max_wal_size = 2GB"
    echo "timescaledb.max_background_workers = 4"
    echo "# WAL flush timings in pg_stat_wal (the benchmark reports them per second)"
    echo "track_wal_io_timing = on"
    if [ "$TSDB_FAST" = "1" ]; then
      echo "# throwaway test cluster: durability off for speed (never for benchmarks)"
      echo "fsync = off"; echo "synchronous_commit = off"; echo "full_page_writes = off"
    fi
  } >> "$data/postgresql.conf"
}

running() { as_pg "$PG_BIN_IN/pg_ctl" -D "$DATA_IN" status >/dev/null 2>&1; }

start() {
  if running; then return; fi
  log "starting on 127.0.0.1:$TSDB_PORT"
  # setsid: the postmaster must not belong to the caller's process group.
  if native; then
    setsid runuser -u postgres -- env -i PATH=/usr/bin:/bin LANG=C.UTF-8 LC_ALL=C.UTF-8 \
      "$PG_BIN_IN/pg_ctl" -D "$DATA_IN" -l "/tmp/cardata-tsdb-$TSDB_PORT.log" -w -t 60 start >/dev/null
  else
    setsid chroot "$ROOT" runuser -u postgres -- env -i PATH=/usr/bin:/bin LANG=C.UTF-8 LC_ALL=C.UTF-8 \
      "$PG_BIN_IN/pg_ctl" -D "$DATA_IN" -l "/tmp/cardata-tsdb-$TSDB_PORT.log" -w -t 60 start >/dev/null
  fi
}

stop() {
  if running; then as_pg "$PG_BIN_IN/pg_ctl" -D "$DATA_IN" -m fast -w stop >/dev/null; fi
}

psql_su() { as_pg env PGOPTIONS="-c client_min_messages=warning" /usr/bin/psql -h /tmp -p "$TSDB_PORT" -U postgres -v ON_ERROR_STOP=1 -qAt "$@"; }

ensure_db() {
  psql_su -d postgres -c "DO \$\$BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname='$TSDB_USER') THEN CREATE ROLE $TSDB_USER LOGIN CREATEDB PASSWORD '$TSDB_PASSWORD'; END IF; END\$\$;"
  if [ "$(psql_su -d postgres -c "SELECT 1 FROM pg_database WHERE datname='$TSDB_DB'")" != "1" ]; then
    psql_su -d postgres -c "CREATE DATABASE $TSDB_DB OWNER $TSDB_USER"
  fi
  # The extension is created by the superuser in template1 too, so that databases made
  # by tests (CREATE DATABASE as the unprivileged role) already have it.
  psql_su -d template1 -c "CREATE EXTENSION IF NOT EXISTS timescaledb"
  psql_su -d "$TSDB_DB" -c "CREATE EXTENSION IF NOT EXISTS timescaledb"
}

url() { echo "postgres://$TSDB_USER:$TSDB_PASSWORD@127.0.0.1:$TSDB_PORT/$TSDB_DB"; }

case "${1:-up}" in
  up)
    # One builder at a time: two concurrent `up`s (two checkouts, or a test run beside a
    # bench) would otherwise remove each other's half-built root.
    mkdir -p "$TSDB_HOME"
    exec 9>"$TSDB_HOME/.up.lock"
    flock 9
    # The server must not inherit the lock (it would hold it for its whole life).
    install; init_cluster; start 9>&-; ensure_db; url ;;
  # The packages only (scripts/ha.sh installs Patroni into the same root).
  install-only) mkdir -p "$TSDB_HOME"; exec 9>"$TSDB_HOME/.up.lock"; flock 9; install ;;
  start) start ;;
  stop) stop ;;
  url) url ;;
  psql) shift; psql_su -d "$TSDB_DB" "$@" ;;
  *) echo "usage: $0 up|start|stop|url|psql" >&2; exit 2 ;;
esac
