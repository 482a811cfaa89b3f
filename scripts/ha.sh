#!/usr/bin/env bash
# A highly available PostgreSQL 17 + TimescaleDB on this machine's loopback, for tests,
# benchmarks and trying it out (docs/high-availability.md): etcd, two Patroni-managed
# nodes (deploy/patroni/patroni.yml) and HAProxy (deploy/patroni/haproxy.cfg) with a
# write port (the leader) and a read port (the standbys).
#
#   scripts/ha.sh up        install if needed, start what is not running; prints the write URL
#   scripts/ha.sh install   only install (patroni, etcd-server into the TimescaleDB root)
#   scripts/ha.sh down      stop what `up` started (only the PIDs it recorded); data kept
#   scripts/ha.sh status    processes and `patronictl list`
#   scripts/ha.sh url       the write port's DATABASE_URL
#   scripts/ha.sh read-url  the read port's DATABASE_READ_URL
#   scripts/ha.sh ctl ARGS  patronictl ARGS (e.g. `ctl switchover --force`)
#   scripts/ha.sh switchover  a planned switchover to the standby: CHECKPOINT on the leader
#                           first, so that its shutdown checkpoint (which commits wait
#                           behind) has little left to write; then patronictl switchover
#   scripts/ha.sh pid NAME  a recorded PID (etcd, pg1, pg2, haproxy) or the postmaster of pg1/pg2 (pm-pg1)
#   scripts/ha.sh wipe      down, then delete the cluster's data (a fresh cluster on the next up)
#
# It uses the installation of scripts/timescaledb.sh (on Debian 12 its Debian 13 root,
# where patroni and etcd-server are installed too: Patroni runs PostgreSQL from the root's
# bin_dir), and the host's haproxy. Every process starts with setsid (its own session, so
# it outlives this script) and its PID goes to $HA_HOME/run/NAME.pid; `down` signals only
# those PIDs.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"

HA_HOME="${HA_HOME:-/var/tmp/cardata-gateway-ha}"
TSDB_HOME="${TSDB_HOME:-/var/tmp/cardata-gateway-tsdb}"
HA_ETCD_PORT="${HA_ETCD_PORT:-52379}"
HA_ETCD_PEER_PORT="${HA_ETCD_PEER_PORT:-52380}"
HA_PG1_PORT="${HA_PG1_PORT:-55441}"
HA_PG2_PORT="${HA_PG2_PORT:-55442}"
HA_API1_PORT="${HA_API1_PORT:-58441}"
HA_API2_PORT="${HA_API2_PORT:-58442}"
HA_WRITE_PORT="${HA_WRITE_PORT:-55443}"
HA_READ_PORT="${HA_READ_PORT:-55444}"
HA_USER="${HA_USER:-cardata}"
HA_PASSWORD="${HA_PASSWORD:-cardata}"
HA_DB="${HA_DB:-cardata}"
# Data inside the root (as its processes see it).
DATA_IN="${HA_DATA:-/var/lib/cardata-ha}"
CONF_IN=/etc/cardata-ha
RUN="$HA_HOME/run"
LOGS="$HA_HOME/log"

log() { echo "[ha] $*" >&2; }
os_version() { . /etc/os-release; echo "${VERSION_ID:-0}"; }
native() { [ "$(os_version)" -ge 13 ] 2>/dev/null; }
if native; then ROOT=/; else ROOT="$TSDB_HOME/root"; fi
host_path() { if native; then echo "$1"; else echo "$ROOT$1"; fi; }

# Runs a command as postgres in the root, with a clean environment plus "$@"'s own env.
in_root() { chroot --userspec=postgres:postgres "$ROOT" env -i PATH=/usr/bin:/bin HOME=/tmp LANG=C.UTF-8 LC_ALL=C.UTF-8 "$@"; }

install() {
  bash scripts/timescaledb.sh install-only >/dev/null
  if [ -x "$(host_path /usr/bin/patroni)" ] && [ -x "$(host_path /usr/bin/etcd)" ] \
    && [ -d "$(host_path /usr/lib/python3/dist-packages/etcd)" ]; then return; fi
  log "installing patroni and etcd-server (Debian 13 packages) into $ROOT"
  if native; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends patroni etcd-server etcd-client python3-etcd >/dev/null
  else
    chroot "$ROOT" sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends patroni etcd-server etcd-client python3-etcd python3-psycopg2 >/dev/null'
  fi
  # Debian's packages start nothing by themselves in a root without an init system; on a
  # native Debian 13 with systemd, keep the packaged etcd unit from holding 2379.
  if native && command -v systemctl >/dev/null; then systemctl disable --now etcd >/dev/null 2>&1 || true; fi
}

alive() { local f="$RUN/$1.pid"; [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null; }

# start NAME CMD...: setsid, PID recorded (the command execs in place of the shell).
start_proc() {
  local name="$1"; shift
  if alive "$name"; then return; fi
  mkdir -p "$RUN" "$LOGS"
  setsid bash -c 'echo $$ > "$0"; exec "$@"' "$RUN/$name.pid" "$@" >>"$LOGS/$name.log" 2>&1 < /dev/null &
  local i; for i in $(seq 1 50); do [ -s "$RUN/$name.pid" ] && break; sleep 0.1; done
}

# Patroni watches its postmaster through psutil, which reads /proc, and its failover
# checks use Python's multiprocessing locks, which need /dev/shm: the root (Debian 12
# hosts) gets a proc and a tmpfs mount of its own while the cluster runs; `down` removes them.
mount_fs() {
  native && return 0
  if ! mountpoint -q "$ROOT/proc"; then mount -t proc proc "$ROOT/proc"; echo proc >> "$HA_HOME/.mounted"; fi
  mkdir -p "$ROOT/dev/shm"
  if ! mountpoint -q "$ROOT/dev/shm"; then mount -t tmpfs -o mode=1777,size=64m tmpfs "$ROOT/dev/shm"; echo dev/shm >> "$HA_HOME/.mounted"; fi
}

umount_fs() {
  native && return 0
  local m
  if [ -f "$HA_HOME/.mounted" ]; then
    for m in $(sort -u "$HA_HOME/.mounted"); do mountpoint -q "$ROOT/$m" && { umount "$ROOT/$m" || true; }; done
  fi
  rm -f "$HA_HOME/.mounted"
}

configure() {
  local conf; conf=$(host_path "$CONF_IN")
  mkdir -p "$conf" "$(host_path "$DATA_IN")"
  cp "$REPO/deploy/patroni/patroni.yml" "$REPO/deploy/patroni/post-bootstrap.sh" "$conf/"
  chmod 644 "$conf/patroni.yml"; chmod 755 "$conf/post-bootstrap.sh"
  if native; then chown postgres:postgres "$DATA_IN"; else chroot "$ROOT" chown postgres:postgres "$DATA_IN"; fi
  chmod 700 "$(host_path "$DATA_IN")"
}

wait_port() { local port="$1" i; for i in $(seq 1 "${2:-300}"); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0; sleep 0.2; done; return 1; }

start_etcd() {
  start_proc etcd chroot --userspec=postgres:postgres "$ROOT" env -i PATH=/usr/bin:/bin HOME=/tmp \
    etcd --name cardata-ha --data-dir "$DATA_IN/etcd" \
    --listen-client-urls "http://127.0.0.1:$HA_ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$HA_ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$HA_ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$HA_ETCD_PEER_PORT" \
    --initial-cluster "cardata-ha=http://127.0.0.1:$HA_ETCD_PEER_PORT" --log-level warn
  wait_port "$HA_ETCD_PORT" 100 || { log "etcd did not start: $LOGS/etcd.log"; tail -n 20 "$LOGS/etcd.log" >&2; exit 1; }
}

node_env() { # node_env N: the per-node variables of patroni.yml
  local n="$1" pg api
  if [ "$n" = 1 ]; then pg=$HA_PG1_PORT; api=$HA_API1_PORT; else pg=$HA_PG2_PORT; api=$HA_API2_PORT; fi
  echo PATRONI_NAME="pg$n" \
    PATRONI_RESTAPI_LISTEN="127.0.0.1:$api" PATRONI_RESTAPI_CONNECT_ADDRESS="127.0.0.1:$api" \
    PATRONI_POSTGRESQL_LISTEN="127.0.0.1:$pg" PATRONI_POSTGRESQL_CONNECT_ADDRESS="127.0.0.1:$pg" \
    PATRONI_POSTGRESQL_DATA_DIR="$DATA_IN/pg$n" PATRONI_POSTGRESQL_PGPASS="/tmp/cardata-ha-pgpass-pg$n" \
    PATRONI_ETCD3_HOSTS="127.0.0.1:$HA_ETCD_PORT" \
    PATRONI_SUPERUSER_PASSWORD="$HA_PASSWORD-su" PATRONI_REPLICATION_PASSWORD="$HA_PASSWORD-repl" \
    PATRONI_REWIND_PASSWORD="$HA_PASSWORD-rewind" \
    CARDATA_DB_USER="$HA_USER" CARDATA_DB_PASSWORD="$HA_PASSWORD" CARDATA_DB_NAME="$HA_DB"
}

start_node() {
  local n="$1"
  # shellcheck disable=SC2046
  start_proc "pg$n" chroot --userspec=postgres:postgres "$ROOT" env -i PATH=/usr/bin:/bin HOME=/tmp \
    LANG=C.UTF-8 LC_ALL=C.UTF-8 $(node_env "$n") patroni "$CONF_IN/patroni.yml"
}

api_port() { if [ "$1" = 1 ]; then echo "$HA_API1_PORT"; else echo "$HA_API2_PORT"; fi; }

# HTTP status of GET path on node N's REST API (000 when it does not answer).
rest() { curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$(api_port "$1")$2" || true; }

start_haproxy() {
  local bin; bin=$(command -v haproxy || echo /usr/sbin/haproxy)
  [ -x "$bin" ] || { log "haproxy is not installed (apt-get install haproxy)"; exit 1; }
  start_proc haproxy env HA_BIND=127.0.0.1 HA_WRITE_PORT="$HA_WRITE_PORT" HA_READ_PORT="$HA_READ_PORT" \
    PG1_HOST=127.0.0.1 PG1_PORT="$HA_PG1_PORT" PG1_API_PORT="$HA_API1_PORT" \
    PG2_HOST=127.0.0.1 PG2_PORT="$HA_PG2_PORT" PG2_API_PORT="$HA_API2_PORT" \
    "$bin" -db -f "$REPO/deploy/patroni/haproxy.cfg"
  wait_port "$HA_WRITE_PORT" 50 || { log "haproxy did not start: $LOGS/haproxy.log"; tail -n 20 "$LOGS/haproxy.log" >&2; exit 1; }
}

url() { echo "postgres://$HA_USER:$HA_PASSWORD@127.0.0.1:$HA_WRITE_PORT/$HA_DB"; }
read_url() { echo "postgres://$HA_USER:$HA_PASSWORD@127.0.0.1:$HA_READ_PORT/$HA_DB"; }

wait_ready() { # a leader, a streaming synchronous standby, and the write port taking queries
  local i
  for i in $(seq 1 600); do
    if { [ "$(rest 1 /primary)" = 200 ] || [ "$(rest 2 /primary)" = 200 ]; } \
      && { [ "$(rest 1 /synchronous)" = 200 ] || [ "$(rest 2 /synchronous)" = 200 ]; } \
      && in_root psql "$(url)" -qAtc 'SELECT 1' >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  log "the cluster did not become ready in 120 s: logs in $LOGS"; tail -n 30 "$LOGS/pg1.log" "$LOGS/pg2.log" >&2; return 1
}

up() {
  mkdir -p "$HA_HOME"
  exec 9>"$HA_HOME/.up.lock"; flock 9
  install; configure; mount_fs
  start_etcd 9>&-
  # The node that led when the cluster was stopped starts first and leads again: it has
  # the newest WAL (its shutdown checkpoint at least). Started together, the other could
  # win the leader race while the first is still starting, and the first would then have
  # to be rewound or cloned. On the very first start pg1 initialises the cluster and pg2
  # clones it.
  local first=1 second=2 i
  if [ "$(cat "$HA_HOME/last-leader" 2>/dev/null)" = 2 ]; then first=2; second=1; fi
  start_node "$first" 9>&-
  for i in $(seq 1 600); do
    [ "$(rest "$first" /primary)" = 200 ] && break
    alive "pg$first" || { log "pg$first exited: $LOGS/pg$first.log"; tail -n 30 "$LOGS/pg$first.log" >&2; exit 1; }
    sleep 0.2
  done
  start_node "$second" 9>&-
  start_haproxy 9>&-
  wait_ready
  url
}

# The postmaster of node N, from its data directory's postmaster.pid (started by Patroni).
postmaster_pid() { head -1 "$(host_path "$DATA_IN/pg$1/postmaster.pid")" 2>/dev/null || true; }

stop_pid() { # stop_pid NAME [signal]: TERM, then KILL after 20 s, for the recorded PID only
  local name="$1" f="$RUN/$1.pid" pid i
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -CONT "$pid" 2>/dev/null || true
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

down() {
  stop_pid haproxy
  local n pm order="1 2"
  # The standby first: stopping the leader first would make the standby take over (a
  # failover) before it is stopped in turn. The leader is remembered: `up` starts it first.
  if [ "$(rest 1 /primary)" = 200 ]; then order="2 1"; echo 1 > "$HA_HOME/last-leader"
  elif [ "$(rest 2 /primary)" = 200 ]; then echo 2 > "$HA_HOME/last-leader"; fi
  for n in $order; do
    stop_pid "pg$n"   # Patroni stops its PostgreSQL on SIGTERM
    # A postmaster left behind by a Patroni that was killed (tests do): it was started by
    # our Patroni, its PID is in its own data directory.
    pm=$(postmaster_pid "$n")
    if [ -n "$pm" ] && kill -0 "$pm" 2>/dev/null; then
      kill -CONT "$pm" 2>/dev/null || true
      in_root /usr/lib/postgresql/17/bin/pg_ctl -D "$DATA_IN/pg$n" -m immediate -w stop >/dev/null 2>&1 || true
    fi
  done
  stop_pid etcd
  umount_fs
}

status() {
  local name
  for name in etcd pg1 pg2 haproxy; do
    if alive "$name"; then echo "$name: running (pid $(cat "$RUN/$name.pid"))"; else echo "$name: stopped"; fi
  done
  if alive etcd; then ctl list || true; fi
}

ctl() { in_root patronictl -c "$CONF_IN/patroni.yml" --dcs-url "etcd3://127.0.0.1:$HA_ETCD_PORT" "$@"; }

switchover() {
  local leader candidate port
  if [ "$(rest 1 /primary)" = 200 ]; then leader=pg1; candidate=pg2; port=$HA_PG1_PORT
  elif [ "$(rest 2 /primary)" = 200 ]; then leader=pg2; candidate=pg1; port=$HA_PG2_PORT
  else log "no leader answers /primary"; return 1; fi
  # The dirty pages written now, while commits go on, are not written by the shutdown
  # checkpoint the switchover waits for (measured in docs/high-availability.md).
  in_root psql -h /tmp -p "$port" -U postgres -qAtc CHECKPOINT
  ctl switchover --leader "$leader" --candidate "$candidate" --force
}

case "${1:-up}" in
  up) up ;;
  install) mkdir -p "$HA_HOME"; exec 9>"$HA_HOME/.up.lock"; flock 9; install ;;
  down) down ;;
  status) status ;;
  url) url ;;
  read-url) read_url ;;
  ctl) shift; ctl "$@" ;;
  switchover) switchover ;;
  pid)
    case "${2:-}" in
      pm-pg1) postmaster_pid 1 ;;
      pm-pg2) postmaster_pid 2 ;;
      *) cat "$RUN/${2:-}.pid" ;;
    esac ;;
  wipe) down; rm -rf "$(host_path "$DATA_IN")" "$RUN" ;;
  *) echo "usage: $0 up|install|down|status|url|read-url|ctl ARGS|switchover|pid NAME|wipe" >&2; exit 2 ;;
esac
