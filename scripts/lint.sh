#!/usr/bin/env bash
# ESLint with typescript-eslint's type-checked rules (tools/lint/eslint.config.js).
# The linter has its own toolchain in tools/lint (TypeScript 6.0's JavaScript API, which
# typescript-eslint needs and TypeScript 7 no longer ships); installed on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x tools/lint/node_modules/.bin/eslint ] || [ tools/lint/package-lock.json -nt tools/lint/node_modules/.package-lock.json ]; then
  npm ci --prefix tools/lint --no-audit --no-fund --loglevel=error >/dev/null
fi
exec tools/lint/node_modules/.bin/eslint -c tools/lint/eslint.config.js --max-warnings 0 "${@:-.}"
