#!/usr/bin/env bash
# Makes a fresh clone usable: the pinned pnpm (from package.json's
# packageManager), dependencies from the lockfile, and a build.
set -euo pipefail
cd "$(dirname "$0")/.."
want=$(node -p 'require("./package.json").packageManager.split("@")[1]')
if [ "$(pnpm --version 2>/dev/null || true)" != "$want" ]; then
  echo "bootstrap: installing pnpm $want" >&2
  npm install -g --silent "pnpm@$want" >/dev/null 2>&1 || npm install -g "pnpm@$want"
fi
pnpm install --frozen-lockfile --reporter=silent
pnpm turbo run build --output-logs=errors-only >&2
