#!/usr/bin/env bash
# N gateway processes on this host behind HAProxy (deploy/haproxy/haproxy.cfg), all cores
# used: the documented way to run more than one process (`npm start` stays one process).
#
#   DATABASE_URL=postgres://… scripts/cluster.sh [N]        # N gateways (default: one per core)
#
# Vehicles connect to HAProxy on LB_MQTT_PORT (1883) / LB_MQTTS_PORT (8883), the API is on
# LB_HTTP_PORT (8080). Gateway k listens on 127.0.0.1 only: MQTT 11883+k, MQTTS 18883+k,
# HTTP 18080+k (GW_BASE_* to move them). Each gateway's log goes to $CLUSTER_LOG_DIR/gwK.log.
# Ctrl-C (or SIGTERM) stops HAProxy, then every gateway in order (SIGTERM: drain, flush).
#
# Every process needs the same ADMIN_TOKEN and JWT_KEYS (a token minted by one gateway is
# checked by another): generated once here when unset, and printed. Any other gateway
# setting in the environment (WRITER_*, TLS_*, RETENTION_*, …) passes through to all.
set -euo pipefail
cd "$(dirname "$0")/.."

N="${1:-$(nproc)}"
if ! [[ "$N" =~ ^[1-9][0-9]?$ ]]; then echo "usage: $0 [N]   (1-99 gateway processes)" >&2; exit 2; fi
if [ -z "${DATABASE_URL:-}" ]; then
  echo "DATABASE_URL must be set: the embedded database serves one process only" >&2; exit 2
fi
HAPROXY="$(command -v haproxy || echo /usr/sbin/haproxy)"
[ -x "$HAPROXY" ] || { echo "haproxy is not installed (Debian: apt-get install haproxy)" >&2; exit 1; }

export ADMIN_TOKEN="${ADMIN_TOKEN:-$(openssl rand -hex 24)}"
export JWT_KEYS="${JWT_KEYS:-k1:$(openssl rand -hex 32)}"
GW_BASE_MQTT="${GW_BASE_MQTT:-11883}"
GW_BASE_MQTTS="${GW_BASE_MQTTS:-18883}"
GW_BASE_HTTP="${GW_BASE_HTTP:-18080}"
CLUSTER_LOG_DIR="${CLUSTER_LOG_DIR:-./cluster-logs}"
mkdir -p "$CLUSTER_LOG_DIR"

# The shipped configuration names gw1..gw3: make it name gw1..gwN (lines of gw3 copied
# for 4..N, lines beyond N left out), everything else as shipped.
CFG="$(mktemp -t cardata-haproxy.XXXXXX.cfg)"
awk -v n="$N" '
  match($0, /^[ \t]*server gw[0-9]+ /) {
    k = substr($0, RSTART, RLENGTH); sub(/^[ \t]*server gw/, "", k); k += 0
    if (k <= n) print
    if (k == 3) for (j = 4; j <= n; j++) { l = $0; gsub(/gw3/, "gw" j, l); gsub(/GW3_/, "GW" j "_", l); print l }
    next
  }
  { print }' deploy/haproxy/haproxy.cfg > "$CFG"

pids=()
stop() {
  trap - INT TERM EXIT
  [ -n "${LB_PID:-}" ] && kill "$LB_PID" 2>/dev/null || true
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -f "$CFG"
}
trap stop INT TERM EXIT

for k in $(seq 1 "$N"); do
  export "GW${k}_HOST=127.0.0.1" "GW${k}_MQTT_PORT=$((GW_BASE_MQTT + k))" "GW${k}_MQTTS_PORT=$((GW_BASE_MQTTS + k))" "GW${k}_HTTP_PORT=$((GW_BASE_HTTP + k))"
  INSTANCE_ID="$(hostname -s 2>/dev/null || echo host)-gw$k" \
  MQTT_HOST=127.0.0.1 MQTT_PORT=$((GW_BASE_MQTT + k)) MQTTS_PORT=$((GW_BASE_MQTTS + k)) \
  HTTP_HOST=127.0.0.1 HTTP_PORT=$((GW_BASE_HTTP + k)) \
  MQTT_PROXY_PROTOCOL=true HTTP_TRUST_PROXY=127.0.0.1 \
    node --import tsx main.ts >"$CLUSTER_LOG_DIR/gw$k.log" 2>&1 &
  pids+=("$!")
done

# HAProxy needs about two descriptors per connection: keep its maxconn within what this
# shell may open (it cannot raise a hard limit), up to the configuration's 200,000.
if [ -z "${LB_MAXCONN:-}" ]; then
  hard="$(ulimit -Hn)"; [ "$hard" = unlimited ] && hard=400100
  ulimit -n "$hard" 2>/dev/null || true
  LB_MAXCONN=$(( (hard - 100) / 2 )); [ "$LB_MAXCONN" -gt 200000 ] && LB_MAXCONN=200000
  export LB_MAXCONN
fi
export LB_MQTT_PORT="${LB_MQTT_PORT:-1883}" LB_MQTTS_PORT="${LB_MQTTS_PORT:-8883}" LB_HTTP_PORT="${LB_HTTP_PORT:-8080}"
"$HAPROXY" -db -f "$CFG" &
LB_PID=$!
cat <<MSG

cardata-gateway cluster: $N gateway processes behind HAProxy (logs in $CLUSTER_LOG_DIR/)
  MQTT:  mqtt://127.0.0.1:$LB_MQTT_PORT      HTTP: http://127.0.0.1:$LB_HTTP_PORT  (GET /readyz answers from one gateway; /lb-healthz from HAProxy)
  ADMIN_TOKEN=$ADMIN_TOKEN
  JWT_KEYS=$JWT_KEYS
  Ctrl-C stops everything.

MSG
wait "$LB_PID"
