// The crash matrix (issue 10 item 1): kill -9 at every fault point of init
// and sync, on posix over the local transport and on ZFS over the real
// sshd; every case must end at the old or the new snapshot and recover.
// Table: console + test-results/crash-matrix.md.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { requireSsh, requireZfs } from '@dsg/testenv';
import { pool, posixLocalBackend, zfsSshBackend, type Backend } from '../src/harness.js';
import {
  AGENT_POINTS,
  chains,
  CLIENT_POINTS,
  initCase,
  pointLabel,
  syncChain,
  table,
  ZFS_CLIENT_POINTS,
  type CaseResult,
  type FaultPoint,
} from '../src/crash-matrix.js';

const zfs = requireZfs();
const ssh = requireSsh();
const RESULTS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'test-results');

/** generous: a stuck case must fail on its own checks, not on the timeout */
const LONG = 1_800_000;
const rows: CaseResult[] = [];
const backends: Backend[] = [];

afterAll(() => {
  for (const b of backends) b.destroy();
  if (!rows.length) return;
  const order = (r: CaseResult): string => `${r.backend} ${r.phase === 'init' ? 0 : 1}`;
  rows.sort((a, b) => order(a).localeCompare(order(b)));
  const md = `# Crash matrix\n\nkill -9 at each fault point, then recovery (see tests/reliability/src/crash-matrix.ts).\n\n${table(rows)}`;
  mkdirSync(RESULTS, { recursive: true });
  writeFileSync(path.join(RESULTS, 'crash-matrix.md'), md);
  console.log(md);
});

function expectAllRecovered(got: CaseResult[], want: FaultPoint[]): void {
  expect(got.map((r) => r.point).sort()).toEqual(want.map(pointLabel).sort());
  const failed = got.filter((r) => !r.recovered).map((r) => `${r.backend} ${r.phase} ${r.point}: ${r.error}`);
  expect(failed, failed.join('\n\n')).toEqual([]);
}

async function runInit(b: Backend, points: FaultPoint[], parallel: number): Promise<void> {
  const got = await pool(
    parallel,
    points.map((fp) => () => initCase(b, fp)),
  );
  rows.push(...got);
  expectAllRecovered(got, points);
}

async function runSync(b: Backend, points: FaultPoint[], nChains: number): Promise<void> {
  const got = (await Promise.all(chains(points, nChains).map((c) => syncChain(b, c)))).flat();
  rows.push(...got);
  expectAllRecovered(got, points);
}

describe.concurrent('crash matrix', () => {
  describe('posix over the local transport (agent in-process: every point kills dsg)', () => {
    const b = posixLocalBackend();
    backends.push(b);
    it(
      'init: every point → old or new snapshot, recovered',
      () => runInit(b, [...CLIENT_POINTS, ...AGENT_POINTS.posix.init], 2),
      LONG,
    );
    it(
      'sync (uploads, downloads, deletes both ways): every point → old or new snapshot, recovered',
      () => runSync(b, [...CLIENT_POINTS, ...AGENT_POINTS.posix.sync], 2),
      LONG,
    );
  });

  describe.skipIf(!zfs || !ssh)('zfs over the real sshd (agent points kill the agent, client points kill dsg)', () => {
    const b = zfs && ssh ? zfsSshBackend(zfs, ssh, { label: 'zfs/ssh' }) : null;
    if (b) backends.push(b);
    it(
      'init: every point → old or new snapshot, recovered',
      () => runInit(b!, [...ZFS_CLIENT_POINTS.init, ...AGENT_POINTS.zfs.init], 2),
      LONG,
    );
    it(
      'sync (uploads, downloads, deletes both ways): every point → old or new snapshot, recovered',
      () => runSync(b!, [...ZFS_CLIENT_POINTS.sync, ...AGENT_POINTS.zfs.sync], 2),
      LONG,
    );
  });
});
