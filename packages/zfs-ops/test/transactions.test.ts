import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ValidationError, ZfsOperationError } from '@dsg/contracts';
import { freshParent, listAll, requireZfs, type TestParent } from '@dsg/testenv';
import { listZfsRepositories, ZfsRemoteFilesystem } from '../src/index.js';
import { bytes, hashOf, info, readAll, state, testHasher, tx } from './helpers.js';

const env = requireZfs();

describe.skipIf(!env)('ZFS transactions on the real pool', () => {
  const parents: TestParent[] = [];
  afterEach(() => {
    while (parents.length) parents.pop()!.destroy();
  });
  const setup = (repo = 'repo'): { p: TestParent; fs: ZfsRemoteFilesystem } => {
    const p = freshParent(env!, 'zops');
    parents.push(p);
    return {
      p,
      fs: new ZfsRemoteFilesystem({ parent: p.dataset, repo, mountpoint: p.mountpoint, hasher: testHasher }),
    };
  };
  const put = (fs: ZfsRemoteFilesystem, t: ReturnType<typeof tx>, rel: string, s: string) =>
    fs.writeFile(t, rel, bytes(s), { hash: hashOf(s), size: Buffer.byteLength(s) });

  async function initRepo(fs: ZfsRemoteFilesystem, files: Record<string, string>): Promise<void> {
    const t = tx();
    const b = await fs.begin(t);
    expect(b.pattern).toBe('init');
    for (const [k, v] of Object.entries(files)) await put(fs, t, k, v);
    await fs.commit(t, info(1, 'first'));
  }

  it('init: exactly P/<repo> and @s1 after commit, mounted, files present, no -init-', async () => {
    const { p, fs } = setup();
    expect(await fs.exists()).toBe(false);
    const t = tx();
    const b = await fs.begin(t);
    expect(b).toEqual({ pattern: 'init', workPath: path.join(p.mountpoint, `repo-init-${t}`) });
    expect(state(p)).toContain(`P/repo-init-${t}\t-\t${t}`);
    await put(fs, t, 'data/a.txt', 'alpha');
    await put(fs, t, '.dsg/last-sync.json', '{}');
    await fs.writeLink(t, 'data/link', 'a.txt');
    await fs.commit(t, info(1, 'first\nline two'));
    expect(state(p, ['name', 'dsg:tx'])).toEqual(['P\t-', 'P/repo\t-', 'P/repo@s1\t-']);
    expect(listAll(p.dataset, ['name', 'mounted'])).toContain(`${p.dataset}/repo\tyes`);
    const live = path.join(p.mountpoint, 'repo');
    expect(readFileSync(path.join(live, 'data/a.txt'), 'utf8')).toBe('alpha');
    expect(await readAll(await fs.readFile('data/a.txt'))).toBe('alpha');
    expect(await fs.readFile('missing.txt')).toBeNull();
    expect(await fs.exists()).toBe(true);
    const snaps = await fs.listSnapshots();
    expect(snaps).toHaveLength(1);
    expect(snaps[0]).toMatchObject({
      snapshotId: 's1',
      message: 'first\nline two',
      manifestHash: 'hash-1',
      user: 'alice@example.org',
    });
    expect(Math.abs(Date.parse(snaps[0]!.createdAt) - Date.now())).toBeLessThan(600_000);
    expect(await listZfsRepositories({ parent: p.dataset, mountpoint: p.mountpoint })).toEqual(['repo']);
  });

  it('sync: @s1 and @s2 readable with their own contents, no -sync-, -old-, @sync-temp- left', async () => {
    const { p, fs } = setup();
    await initRepo(fs, { 'a.txt': 'v1', 'gone.txt': 'bye' });
    const t = tx();
    const b = await fs.begin(t);
    expect(b.pattern).toBe('sync');
    expect(b.workPath).toBe(path.join(p.mountpoint, `repo-sync-${t}`));
    // the clone starts as the current snapshot
    expect(readFileSync(path.join(b.workPath, 'a.txt'), 'utf8')).toBe('v1');
    await put(fs, t, 'a.txt', 'v2');
    await put(fs, t, 'new/b.txt', 'bee');
    await fs.deleteFile(t, 'gone.txt');
    await fs.deleteFile(t, 'never-there.txt');
    // the live repository is untouched before commit
    expect(await readAll(await fs.readFile('a.txt'))).toBe('v1');
    await fs.commit(t, info(2));
    const names = listAll(p.dataset).join('\n');
    expect(names).not.toMatch(/-sync-|-old-|sync-temp|-view-/);
    expect(state(p)).toEqual(['P\t-\t-', 'P/repo\t-\t-', 'P/repo@s1\t-\t-', 'P/repo@s2\t-\t-']);
    expect(await readAll(await fs.readFile('a.txt'))).toBe('v2');
    expect(await fs.readFile('gone.txt')).toBeNull();
    expect(await readAll(await fs.readSnapshotFile('s2', 'a.txt'))).toBe('v2');
    // old-snapshot read: no .zfs/snapshot on zfs-fuse, so this goes through a temporary clone
    expect(await readAll(await fs.readSnapshotFile('s1', 'a.txt'))).toBe('v1');
    expect(await readAll(await fs.readSnapshotFile('s1', 'gone.txt'))).toBe('bye');
    expect(await fs.readSnapshotFile('s1', 'new/b.txt')).toBeNull();
    await expect(fs.readSnapshotFile('s9', 'a.txt')).rejects.toThrow(/does not exist/);
    expect((await fs.listSnapshots()).map((s) => s.snapshotId)).toEqual(['s1', 's2']);
    // every read clone was destroyed when its stream closed
    await expect.poll(() => listAll(p.dataset).join('\n'), { timeout: 120_000 }).not.toMatch(/-view-/);
  });

  it('a read clone is destroyed when the reader stops early', async () => {
    const { p, fs } = setup();
    await initRepo(fs, { 'big.bin': 'x'.repeat(1 << 20) });
    const s = await fs.readSnapshotFile('s1', 'big.bin');
    expect(listAll(p.dataset).join('\n')).toMatch(/-view-/);
    for await (const _c of s!) break;
    await expect.poll(() => listAll(p.dataset).join('\n'), { timeout: 120_000 }).not.toMatch(/-view-/);
  });

  it('mountSnapshot shows an old snapshot read-only at a path; unmountSnapshot removes it', async () => {
    const { p, fs } = setup();
    await initRepo(fs, { 'a.txt': 'v1' });
    const t = tx();
    await fs.begin(t);
    await put(fs, t, 'a.txt', 'v2');
    await fs.commit(t, info(2));
    const dir = await mkdtemp(path.join(os.tmpdir(), 'dsg-snapmount-'));
    try {
      const at = await fs.mountSnapshot('s1', dir);
      expect(at).toBe(dir);
      expect(readFileSync(path.join(dir, 'a.txt'), 'utf8')).toBe('v1');
      await expect(import('node:fs/promises').then((m) => m.writeFile(path.join(dir, 'x'), 'x'))).rejects.toThrow(
        /read-only|EROFS/i,
      );
      const dflt = await fs.mountSnapshot('s2');
      expect(readFileSync(path.join(dflt, 'a.txt'), 'utf8')).toBe('v2');
      expect(await listZfsRepositories({ parent: p.dataset, mountpoint: p.mountpoint })).toEqual(['repo']);
      await fs.unmountSnapshot(dir);
      await fs.unmountSnapshot(dflt);
      expect(listAll(p.dataset).join('\n')).not.toMatch(/-view-/);
      await expect(fs.unmountSnapshot(dir)).rejects.toThrow(/no snapshot/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("unmountSnapshot never touches another repository's views (repo vs repo-view in one parent)", async () => {
    const { p, fs } = setup('repo');
    const other = new ZfsRemoteFilesystem({
      parent: p.dataset,
      repo: 'repo-view',
      mountpoint: p.mountpoint,
      hasher: testHasher,
    });
    await initRepo(fs, { 'a.txt': 'mine' });
    await initRepo(other, { 'a.txt': 'theirs' });
    const theirs = await other.mountSnapshot('s1');
    expect(theirs.startsWith(path.join(p.mountpoint, 'repo-view-view-s1-'))).toBe(true);
    await expect(fs.unmountSnapshot(theirs)).rejects.toThrow(/no snapshot of \S*repo is mounted/);
    expect(readFileSync(path.join(theirs, 'a.txt'), 'utf8')).toBe('theirs');
    await fs.recover();
    expect(readFileSync(path.join(theirs, 'a.txt'), 'utf8')).toBe('theirs');
    await other.unmountSnapshot(theirs);
    expect(listAll(p.dataset).join('\n')).not.toMatch(/-view-/);
  });

  it('writeFile refuses a hash or size mismatch and leaves no temp file', async () => {
    const { fs } = setup();
    const t = tx();
    const { workPath } = await fs.begin(t);
    await expect(fs.writeFile(t, 'a.txt', bytes('evil'), { hash: hashOf('good') })).rejects.toThrow(ValidationError);
    await expect(fs.writeFile(t, 'a.txt', bytes('good'), { hash: hashOf('good'), size: 99 })).rejects.toThrow(
      /size mismatch for a.txt: expected 99, got 4/,
    );
    const { readdirSync, mkdirSync } = await import('node:fs');
    expect(readdirSync(workPath)).toEqual([]);
    // the target is a directory: the rename fails and no temp file stays
    mkdirSync(path.join(workPath, 'dir'));
    await expect(put(fs, t, 'dir', 'x')).rejects.toThrow();
    expect(readdirSync(workPath)).toEqual(['dir']);
    // a symlink in the work area cannot be used to escape it
    await expect(fs.writeLink(t, 'out', '.')).rejects.toThrow(/project root/);
    await expect(fs.writeLink(t, 'esc', '../../etc')).rejects.toThrow(ValidationError);
    const { symlinkSync } = await import('node:fs');
    symlinkSync('/tmp', path.join(workPath, 'evil'));
    await expect(put(fs, t, 'evil/x.txt', 'x')).rejects.toThrow(/is a symlink/);
    await expect(put(fs, (t + 'x') as never, 'a.txt', 'x')).rejects.toThrow(/not the open one/);
    await fs.rollback(t);
  });

  it('detection: init for a missing dataset, sync for an existing one, an error for a missing parent or failing zfs', async () => {
    const { p, fs } = setup();
    expect(await fs.ops.detect()).toBe('init');
    await initRepo(fs, { a: '1' });
    expect(await fs.ops.detect()).toBe('sync');
    const before = state(p);
    const missing = new ZfsRemoteFilesystem({
      parent: `${p.dataset}/nope`,
      repo: 'repo',
      mountpoint: path.join(p.mountpoint, 'nope'),
      hasher: testHasher,
    });
    await expect(missing.begin(tx())).rejects.toBeInstanceOf(ZfsOperationError);
    const nopool = new ZfsRemoteFilesystem({
      parent: 'nosuchpool/x',
      repo: 'repo',
      mountpoint: '/nonexistent',
      hasher: testHasher,
    });
    await expect(nopool.begin(tx())).rejects.toBeInstanceOf(ZfsOperationError);
    // a zfs that fails for a reason other than "does not exist" (real process, real exit code)
    const { createZfsRunner } = await import('../src/index.js');
    const broken = new ZfsRemoteFilesystem({
      parent: p.dataset,
      repo: 'other',
      mountpoint: p.mountpoint,
      hasher: testHasher,
      runner: createZfsRunner({ zfsPath: '/bin/false' }),
    });
    await expect(broken.begin(tx())).rejects.toBeInstanceOf(ZfsOperationError);
    const nozfs = new ZfsRemoteFilesystem({
      parent: p.dataset,
      repo: 'other',
      mountpoint: p.mountpoint,
      hasher: testHasher,
      runner: createZfsRunner({ zfsPath: '/nonexistent/zfs' }),
    });
    await expect(nozfs.begin(tx())).rejects.toBeInstanceOf(ZfsOperationError);
    expect(state(p)).toEqual(before);
  });

  it('rollback of init restores zfs list exactly', async () => {
    const { p, fs } = setup();
    const before = state(p);
    const t = tx();
    await fs.begin(t);
    await put(fs, t, 'a', 'x');
    const r = await fs.rollback(t);
    expect(r.leftovers).toEqual([]);
    expect(r.removed).toContain(`${p.dataset}/repo-init-${t}`);
    expect(state(p)).toEqual(before);
    expect(existsSync(path.join(p.mountpoint, `repo-init-${t}`, 'a'))).toBe(false);
  });

  it('rollback of sync restores zfs list exactly, live data untouched', async () => {
    const { p, fs } = setup();
    await initRepo(fs, { a: 'v1' });
    const before = state(p);
    const t = tx();
    await fs.begin(t);
    await put(fs, t, 'a', 'v2');
    const r = await fs.rollback(t);
    expect(r.leftovers).toEqual([]);
    expect(state(p)).toEqual(before);
    expect(await readAll(await fs.readFile('a'))).toBe('v1');
    // a second sync works after rollback
    const t2 = tx();
    await fs.begin(t2);
    await fs.commit(t2, info(2));
    expect((await fs.listSnapshots()).map((s) => s.snapshotId)).toEqual(['s1', 's2']);
  });

  it('commit: a tx id that is not the open one is NotFoundError (as in every backend), the open one rolls back cleanly', async () => {
    const { p, fs } = setup();
    const before = state(p);
    const t = tx();
    await fs.begin(t);
    const e = await fs.commit(tx(), info(1)).catch((x: unknown) => x);
    expect(e).toMatchObject({ name: 'NotFoundError', code: 'NOT_FOUND' });
    const r = await fs.rollback(t);
    expect(r.leftovers).toEqual([]);
    expect(state(p)).toEqual(before);
  });

  it('begin refuses while orphans of an earlier transaction exist; recover() clears them', async () => {
    const { p, fs } = setup();
    const t = tx();
    await fs.begin(t);
    // simulate a crash: a new instance does not know t
    const fs2 = new ZfsRemoteFilesystem({
      parent: p.dataset,
      repo: 'repo',
      mountpoint: p.mountpoint,
      hasher: testHasher,
    });
    await expect(fs2.begin(tx())).rejects.toThrow(/leftovers/);
    const rep = await fs2.recover();
    expect(rep.transactions).toEqual([{ transactionId: t, action: 'rolled-back' }]);
    expect(state(p)).toEqual(['P\t-\t-']);
  });
  it('a runner that runs zfs as another user gets to prepare the init work path; its failure rolls back', async () => {
    const { p } = setup();
    const { createZfsRunner } = await import('../src/index.js');
    const prepared: string[] = [];
    const ok = { ...createZfsRunner(), prepareWorkPath: (dir: string) => (prepared.push(dir), Promise.resolve()) };
    const fs = new ZfsRemoteFilesystem({
      parent: p.dataset,
      repo: 'repo',
      mountpoint: p.mountpoint,
      hasher: testHasher,
      runner: ok,
    });
    const t = tx();
    const b = await fs.begin(t);
    expect(prepared).toEqual([b.workPath]);
    await fs.rollback(t);
    const failing = {
      ...createZfsRunner(),
      prepareWorkPath: () => Promise.reject(new Error('sudo: a password is required')),
    };
    const fs2 = new ZfsRemoteFilesystem({
      parent: p.dataset,
      repo: 'repo',
      mountpoint: p.mountpoint,
      hasher: testHasher,
      runner: failing,
    });
    await expect(fs2.begin(tx())).rejects.toMatchObject({ code: 'ZFS_PERMISSION' });
    expect(state(p)).toEqual(['P\t-\t-']);
  });
});
