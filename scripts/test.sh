#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine: brings up what the tests need
# (protoc for the contract check, a local TimescaleDB unless TEST_DATABASE_URL is set),
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
# HAProxy (Debian 12: 2.6) for the cluster test: three gateways behind deploy/haproxy/haproxy.cfg.
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || apt_install haproxy
if [ -z "${TEST_DATABASE_URL:-}" ]; then
  bash scripts/timescaledb.sh up >/dev/null
fi

npx tsc --noEmit -p .
bash scripts/lint.sh # ESLint, type-checked rules (tools/lint/eslint.config.js), on the whole tree
exec npx vitest run "$@"
