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
# Two packages at a time, each running two test files at a time: the suite
# mostly waits on zfs-fuse, sshd and child processes, so one package alone
# left about 40 % of two cores idle. Every test makes its own datasets,
# directories and agents, so packages do not see each other's.
pnpm turbo run test --concurrency=2 --continue "$@"
rc=$?
set -e
node scripts/test-summary.mjs ${DSG_TEST_SUMMARY:-} || rc=1
exit $rc
