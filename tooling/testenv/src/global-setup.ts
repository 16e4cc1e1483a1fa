import { sshEnv, zfsEnv, requireReal } from './env.js';

/** Prints once per package run which real parts the tests will use. */
export default function setup(): void {
  const z = zfsEnv();
  const s = sshEnv();
  const parts = [
    z ? `ZFS pool ${z.pool} at ${z.mount}` : 'ZFS: absent',
    s ? `sshd ${s.user}@${s.host}:${s.port}` : 'SSH: absent',
    requireReal() ? 'DSG_REQUIRE_REAL=1' : 'real parts optional',
  ];
  console.log(`[dsg-testenv] ${parts.join(' · ')}`);
}
