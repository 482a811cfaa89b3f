#!/usr/bin/env bash
# Regenerates proto/gen/ from proto/vehicle/v1/*.proto (static protobufjs code + types).
# Generated files are committed and never edited by hand; `npm test` fails on a diff.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=proto/gen
mkdir -p "$OUT"
npx pbjs --target static-module --wrap es6 --es6 --force-long --keep-case=false \
  --no-create --no-verify --no-delimited --no-convert \
  -o "$OUT/telemetry.js" proto/vehicle/v1/telemetry.proto
sed -i "s|^import \* as \$protobuf from \"protobufjs/minimal\";|import \$protobuf from \"protobufjs/minimal.js\";|" "$OUT/telemetry.js"
npx pbts --no-comments -o "$OUT/telemetry.d.ts" "$OUT/telemetry.js"
# The field table (group, column, JSON name, number, comment) the storage and API use.
npx tsx scripts/gen-fields.ts "$OUT/fields.ts"
