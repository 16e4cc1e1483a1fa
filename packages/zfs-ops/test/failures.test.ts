import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { freshParent, listAll, requireZfs, zfsRetry, type TestParent } from '@dsg/testenv';
import { ZfsRemoteFilesystem, type BusyRetry } from '../src/index.js';
import { bytes, hashOf, info, readAll, state, testHasher, tx } from './helpers.js';

const env = requireZfs();

describe.skipIf(!env)('commit failures on the real pool', () => {
  const parents: TestParent[] = [];
  const children: ChildProcess[] = [];
  afterEach(() => {
    for (const c of children.splice(0)) c.kill('SIGKILL');
    while (parents.length) parents.pop()!.destroy();
  });
  const setup = (retry?: BusyRetry): { p: TestParent; fs: ZfsRemoteFilesystem } => {
    const p = freshParent(env!, 'zfail');
    parents.push(p);
    return {
      p,
      fs: new ZfsRemoteFilesystem({
        parent: p.dataset,
        repo: 'repo',
        mountpoint: p.mountpoint,
        hasher: testHasher,
        ...(retry ? { retry } : {}),
      }),
    };
  };
  const put = (fs: ZfsRemoteFilesystem, t: ReturnType<typeof tx>, rel: string, s: string) =>
    fs.writeFile(t, rel, bytes(s), { hash: hashOf(s) });
  async function initRepo(fs: ZfsRemoteFilesystem): Promise<void> {
    const t = tx();
    await fs.begin(t);
    await put(fs, t, 'a.txt', 'v1');
    await fs.commit(t, info(1));
  }
  /** a process whose cwd is inside the mounted repository keeps the mount busy */
  function holdMount(dir: string, seconds: number): ChildProcess {
    const c = spawn('sleep', [String(seconds)], { cwd: dir, stdio: 'ignore' });
    children.push(c);
    return c;
  }
  function ended(p: TestParent): void {
    expect(listAll(p.dataset).join('\n')).not.toMatch(/-sync-|-old-|sync-temp|-init-/);
    expect(listAll(p.dataset, ['name', 'dsg:tx']).every((l) => l.endsWith('\t-'))).toBe(true);
  }

  it('a busy mount that clears during commit: retried, then committed', async () => {
    const { p, fs } = setup({ timeoutMs: 20_000 });
    await initRepo(fs);
    const t = tx();
    await fs.begin(t);
    await put(fs, t, 'a.txt', 'v2');
    holdMount(path.join(p.mountpoint, 'repo'), 2);
    await fs.commit(t, info(2));
    ended(p);
    expect(await readAll(await fs.readFile('a.txt'))).toBe('v2');
    expect((await fs.listSnapshots()).map((s) => s.snapshotId)).toEqual(['s1', 's2']);
  });

  it('a busy mount that never clears: commit fails after bounded retries and rolls back cleanly, never half', async () => {
    const { p, fs } = setup({ timeoutMs: 1_500, maxDelayMs: 300 });
    await initRepo(fs);
    const before = state(p);
    const t = tx();
    await fs.begin(t);
    await put(fs, t, 'a.txt', 'v2');
    const holder = holdMount(path.join(p.mountpoint, 'repo'), 600);
    const e = await fs.commit(t, info(2)).catch((x: unknown) => x);
    expect(e).toMatchObject({
      name: 'TransactionCommitError',
      recoveryHint: 'Check ZFS pool health and available space',
    });
    expect(String((e as Error).message)).toMatch(/busy/);
    const r = await fs.rollback(t);
    expect(r.leftovers).toEqual([]);
    holder.kill('SIGKILL');
    expect(state(p)).toEqual(before);
    expect(listAll(p.dataset, ['name', 'mounted'])).toContain(`${p.dataset}/repo\tyes`);
    expect(await readAll(await fs.readFile('a.txt'))).toBe('v1');
  });

  it('failure after promote (rename target exists for real) → rollback gives history back to P/<repo>', async () => {
    const { p, fs } = setup();
    await initRepo(fs);
    const t = tx();
    // the rename P/repo → P/repo-old-<tx> will fail: that name is taken
    const { execFileSync } = await import('node:child_process');
    execFileSync('zfs', ['create', `${p.dataset}/repo-old-${t}`]);
    const before = state(p);
    await fs.begin(t);
    await put(fs, t, 'a.txt', 'v2');
    const e = await fs.commit(t, info(2)).catch((x: unknown) => x);
    expect(e).toMatchObject({ name: 'TransactionCommitError' });
    expect(String((e as Error).message)).toMatch(/exists/);
    // at this point the clone owns the history: P/repo is a clone of it
    expect(listAll(p.dataset, ['name', 'origin'])).toContain(
      `${p.dataset}/repo\t${p.dataset}/repo-sync-${t}@sync-temp-${t}`,
    );
    const r = await fs.rollback(t);
    // the obstacle is not ours: reported, not destroyed
    expect(r.leftovers).toEqual([
      { name: `${p.dataset}/repo-old-${t}`, error: expect.stringMatching(/not made by/) as unknown },
    ]);
    expect(state(p)).toEqual(before);
    expect(listAll(p.dataset, ['name', 'origin'])).toContain(`${p.dataset}/repo\t-`);
    expect(await readAll(await fs.readFile('a.txt'))).toBe('v1');
    expect(await readAll(await fs.readSnapshotFile('s1', 'a.txt'))).toBe('v1');
    // and the repository still takes a sync once the obstacle is gone
    zfsRetry('destroy', `${p.dataset}/repo-old-${t}`); // zfs-fuse: busy for a moment after the rollback
    const t2 = tx();
    await fs.begin(t2);
    await put(fs, t2, 'a.txt', 'v3');
    await fs.commit(t2, info(2));
    expect(await readAll(await fs.readSnapshotFile('s2', 'a.txt'))).toBe('v3');
    ended(p);
  });

  it('commit refuses an existing snapshot id before any irreversible step', async () => {
    const { p, fs } = setup();
    await initRepo(fs);
    const t = tx();
    await fs.begin(t);
    const mid = state(p);
    await expect(fs.commit(t, info(1))).rejects.toThrow(/already exists/);
    expect(state(p)).toEqual(mid);
    expect((await fs.rollback(t)).leftovers).toEqual([]);
    ended(p);
  });
});
