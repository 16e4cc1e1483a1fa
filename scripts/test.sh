#!/usr/bin/env bash
# The README's test command: sets up the real test environment (zfs-fuse pool,
# sshd on 127.0.0.1; needs root), builds, and runs every package's tests.
# As root the real parts are required (DSG_REQUIRE_REAL=1): a test that would
# skip for lack of ZFS or SSH fails instead.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
if [ "$(id -u)" = 0 ]; then
  export DSG_REQUIRE_REAL=${DSG_REQUIRE_REAL:-1}
  bash tooling/testenv/testenv.sh up >/dev/null
else
  echo "test.sh: not root — ZFS/SSH tests will be SKIPPED (visibly); run as root for the full suite" >&2
fi
set +e
pnpm turbo run test --concurrency=1 --continue "$@"
rc=$?
set -e
node scripts/test-summary.mjs ${DSG_TEST_SUMMARY:-} || rc=1
exit $rc
