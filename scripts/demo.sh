#!/usr/bin/env bash
# The README's main command: a complete local demo of dsg (no server needed).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec node apps/cli/dist/demo.js "$@"
