#!/usr/bin/env bash
# Prints the bin directory of Node 24 (the current LTS), installing it from
# the npm registry's `node` package on first use. CI runs the suite on it as
# well as on the machine's Node 20: the built output is the same JS, so only
# the runtime changes.
set -euo pipefail
want=24
prefix=${DSG_NODE24_PREFIX:-/opt/dsg-node$want}
bin="$prefix/node_modules/node/bin"
if ! [ -x "$bin/node" ] || [ "$("$bin/node" -p 'process.versions.node.split(".")[0]')" != "$want" ]; then
  echo "node24: installing node@$want into $prefix" >&2
  mkdir -p "$prefix"
  npm install --silent --no-save --prefix "$prefix" "node@$want" >&2
fi
"$bin/node" --version >&2
echo "$bin"
