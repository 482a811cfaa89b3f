#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine: brings up what the tests need
# (protoc for the contract check, Chromium for the portal's browser tests, a local TimescaleDB unless TEST_DATABASE_URL is set),
# typechecks, then runs vitest. Extra arguments go to vitest (e.g. a file name).
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {
  if [ "$(id -u)" != "0" ]; then echo "need root to apt-get install $*; install it and rerun" >&2; exit 1; fi
  if [ ! -f /var/tmp/cardata-gateway-apt-updated ]; then apt-get update -qq && touch /var/tmp/cardata-gateway-apt-updated; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

command -v protoc >/dev/null || apt_install protobuf-compiler
command -v openssl >/dev/null || apt_install openssl
# The portal's end-to-end tests drive Debian's Chromium (playwright-core cannot download a browser offline).
[ -x /usr/bin/chromium ] || apt_install chromium
# HAProxy (Debian 12: 2.6) for the cluster test: three gateways behind deploy/haproxy/haproxy.cfg.
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || apt_install haproxy
if [ -z "${TEST_DATABASE_URL:-}" ]; then
  bash scripts/timescaledb.sh up >/dev/null
fi
# The `ha` project (test/ha: failovers of a Patroni cluster, run after the others): Patroni
# and etcd go into the TimescaleDB root (scripts/ha.sh). Opt-in for now (HA_TESTS=on): its
# SIGSTOP test found 20 acknowledged records missing after the failover in 1 of 3 clean-clone
# runs (issue 27 stays open until that is understood and fixed). Not as root, or
# HA_TESTS=off (the default): skipped with the reason.
export HA_TESTS="${HA_TESTS:-off}"
if [ "$(id -u)" = "0" ] && [ "$HA_TESTS" != "off" ]; then
  bash scripts/ha.sh install
fi

npx tsc --noEmit -p .
npx tsc --noEmit -p web # the portal (web/tsconfig.json: JavaScript with JSDoc types, DOM)
bash scripts/lint.sh # ESLint, type-checked rules (tools/lint/eslint.config.js), on the whole tree
# With arguments (e.g. one file): that run only, on this machine's Node, as before.
if [ "$#" -gt 0 ]; then exec npx vitest run "$@"; fi

# The whole suite on this machine's Node; then the current LTS lines (README, "Node.js
# versions"), official builds from the npm registry (scripts/node-lts.sh).
# NODE_LTS=full: both projects whole on each of them (about 8 min more each); NODE_LTS=off: none.
# Default: the unit project on 22 (seconds); on 24 (about 75 s on 2 cores) the unit
# project and the integration files that exercise what differs by runtime: the embedded OpenID Provider (sign-in),
# start and stop (npm start, signals), MQTT ingest and the packet guard on real sockets,
# Server-Sent Events, TLS, the exports (zip, COPY streams), child processes
# (devkit/spawn.ts). A failure anywhere fails the whole run, after every run has been made.
failed=()
npx vitest run || failed+=("Node $(node --version): whole suite")
NODE_LTS="${NODE_LTS:-default}"
if [ "$NODE_LTS" != "off" ]; then
  LTS_SUBSET=(sign-in start ingest mqtt-abuse stream tls export-streaming export-copy spawn)
  for major in 24 22; do
    bin="$(bash scripts/node-lts.sh "$major")"
    if [ "$NODE_LTS" = "full" ]; then
      args=()
      what="whole suite"
    elif [ "$major" = 22 ]; then
      # The integration subset runs on the newest line (24); on 22 the unit project, to keep the suite well under 20 min.
      args=(--project unit)
      what="unit project"
    else
      args=(test/unit/)
      for f in "${LTS_SUBSET[@]}"; do args+=("test/integration/$f.test.ts"); done
      what="unit project + integration subset"
    fi
    echo "== Node $("$bin" --version) ($bin): $what" >&2
    t0=$SECONDS
    # PATH first: the children the tests start by name (npm start, npx, node) run on it too.
    PATH="$(dirname "$bin"):$PATH" "$bin" node_modules/vitest/vitest.mjs run "${args[@]}" \
      || failed+=("Node $("$bin" --version): $what")
    echo "== Node $("$bin" --version): $what took $((SECONDS - t0)) s" >&2
  done
fi
if [ "${#failed[@]}" -gt 0 ]; then
  printf 'FAILED: %s\n' "${failed[@]}" >&2
  exit 1
fi
