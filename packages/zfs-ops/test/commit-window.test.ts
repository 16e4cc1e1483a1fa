// Readers take no lock: a status, log or clone can look while another
// client's commit is between its two renames (P/<repo> moved to
// P/<repo>-old-<tx>, the new generation not yet in place). They must wait
// for the commit, never answer "no repository" (a client would init) or fail.
// Found by the 4-client concurrency test on a busy CI machine.
import { execFileSync } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { DsgError } from '@dsg/contracts';
import { freshParent, requireZfs, type TestParent } from '@dsg/testenv';
import { createZfsRunner, ZfsRemoteFilesystem, type ZfsRunner } from '../src/index.js';
import { bytes, hashOf, info, testHasher, tx } from './helpers.js';

const env = requireZfs();
const zfs = (...args: string[]): string => execFileSync('zfs', args, { encoding: 'utf8' });

describe.skipIf(!env)('a read during another commit’s rename window', () => {
  const parents: TestParent[] = [];
  afterEach(() => {
    while (parents.length) parents.pop()!.destroy();
  });

  /** A repository at s2, and a reader whose zfs commands are recorded (the real runner underneath). */
  async function twoSnapshots(settleTimeoutMs?: number) {
    const p = freshParent(env!, 'zwin');
    parents.push(p);
    const opts = { parent: p.dataset, repo: 'repo', mountpoint: p.mountpoint, hasher: testHasher };
    const writer = new ZfsRemoteFilesystem(opts);
    for (const n of [1, 2]) {
      const t = tx();
      await writer.begin(t);
      await writer.writeFile(t, `data/f${n}.txt`, bytes(`v${n}`), { hash: hashOf(`v${n}`) });
      await writer.commit(t, info(n));
    }
    const seen: string[][] = [];
    const real = createZfsRunner();
    const runner: ZfsRunner = { ...real, run: (args) => (seen.push([...args]), real.run(args)) };
    const reader = new ZfsRemoteFilesystem({ ...opts, runner, ...(settleTimeoutMs ? { settleTimeoutMs } : {}) });
    return { live: `${p.dataset}/repo`, reader, seen };
  }

  /** Moves P/<repo> aside the way a commit does between its renames. */
  function openWindow(live: string): string {
    const old = `${live}-old-${tx()}`;
    zfs('unmount', live);
    zfs('rename', live, old);
    return old;
  }

  it('waits for the commit to settle, then answers with the repository as it is', async () => {
    const { live, reader, seen } = await twoSnapshots();
    const old = openWindow(live);
    const snapshots = reader.listSnapshots();
    const exists = reader.exists();
    // close the window only once the reader has looked for a commit in flight (it saw the gap)
    while (!seen.some((a) => a[0] === 'list' && a.includes('-d') && a.includes('1'))) {
      await new Promise((r) => setTimeout(r, 20));
    }
    zfs('rename', old, live);
    zfs('mount', live);
    expect((await snapshots).map((s) => s.snapshotId)).toEqual(['s1', 's2']);
    expect(await exists).toBe(true);
  });

  it('a window that never closes (a commit interrupted there) is an error with a hint, never "no repository"', async () => {
    const { live, reader } = await twoSnapshots(300);
    const old = openWindow(live);
    const err = await reader.listSnapshots().then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(DsgError);
    expect((err as DsgError).code).toBe('ZFS_COMMIT_IN_FLIGHT');
    expect((err as DsgError).recoveryHint).toMatch(/dsg clean/);
    await expect(reader.exists()).rejects.toThrow(/in the middle of a commit/);
    // recovery (what dsg clean runs) puts it back, and the reader answers again
    zfs('rename', old, live);
    zfs('mount', live);
    expect((await reader.listSnapshots()).map((s) => s.snapshotId)).toEqual(['s1', 's2']);
  });

  it('a repository that does not exist, with no commit in flight, is answered at once', async () => {
    const p = freshParent(env!, 'zwin');
    parents.push(p);
    const fs = new ZfsRemoteFilesystem({
      parent: p.dataset,
      repo: 'nope',
      mountpoint: p.mountpoint,
      hasher: testHasher,
      settleTimeoutMs: 600_000,
    });
    expect(await fs.exists()).toBe(false);
    expect(await fs.listSnapshots()).toEqual([]);
  });
});
