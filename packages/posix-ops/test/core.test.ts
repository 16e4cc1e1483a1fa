import { lstat, readdir, readFile, readlink, stat } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { NotFoundError, TransactionCommitError, ValidationError } from '@dsg/contracts';
import { listPosixRepositories } from '../src/index.js';
import { hashOf, listing, put, sandbox, streamOf, sync, text, txId, type Sandbox } from './helpers.js';

let sb: Sandbox;
beforeEach(async () => {
  sb = await sandbox();
});
afterEach(async () => {
  await sb.cleanup();
});

const ino = async (p: string): Promise<number> => (await lstat(p)).ino;

describe('init then three syncs', () => {
  it('keeps every snapshot readable with its own contents, sharing unchanged files by inode', async () => {
    const { fs, root } = sb;
    expect(await fs.exists()).toBe(false);
    expect(await fs.listSnapshots()).toEqual([]);

    const tx1 = txId();
    expect((await fs.begin(tx1)).pattern).toBe('init');
    await put(fs, tx1, 'a.txt', 'A1');
    await put(fs, tx1, 'dir/b.txt', 'B1');
    await put(fs, tx1, 'dir/deep/c.txt', 'C1');
    await fs.writeLink(tx1, 'dir/link', 'b.txt');
    await fs.commit(tx1, {
      snapshotId: 's1',
      message: 'first',
      manifestHash: 'h1',
      user: 'u@x',
      createdAt: '2026-01-01T00:00:00Z',
    });
    expect(await fs.exists()).toBe(true);
    expect(await readlink(path.join(root, 'current'))).toBe('snapshots/s1');

    const tx2 = txId();
    expect((await fs.begin(tx2)).pattern).toBe('sync');
    await put(fs, tx2, 'a.txt', 'A2');
    await fs.deleteFile(tx2, 'dir/deep/c.txt');
    await fs.deleteFile(tx2, 'never-existed.txt');
    await fs.commit(tx2, {
      snapshotId: 's2',
      message: 'second',
      manifestHash: 'h2',
      user: 'u@x',
      createdAt: '2026-01-02T00:00:00Z',
    });

    await sync(fs, 3, { 'dir/b.txt': 'B3', 'new.txt': 'N3' });
    await sync(fs, 4, { 'new.txt': 'N4' });

    const snaps = await fs.listSnapshots();
    expect(snaps.map((s) => s.snapshotId)).toEqual(['s1', 's2', 's3', 's4']);
    expect(snaps[0]).toMatchObject({
      message: 'first',
      manifestHash: 'h1',
      user: 'u@x',
      createdAt: '2026-01-01T00:00:00Z',
    });

    const want: Record<string, Record<string, string | null>> = {
      s1: { 'a.txt': 'A1', 'dir/b.txt': 'B1', 'dir/deep/c.txt': 'C1', 'new.txt': null },
      s2: { 'a.txt': 'A2', 'dir/b.txt': 'B1', 'dir/deep/c.txt': null, 'new.txt': null },
      s3: { 'a.txt': 'A2', 'dir/b.txt': 'B3', 'dir/deep/c.txt': null, 'new.txt': 'N3' },
      s4: { 'a.txt': 'A2', 'dir/b.txt': 'B3', 'dir/deep/c.txt': null, 'new.txt': 'N4' },
    };
    for (const [id, files] of Object.entries(want)) {
      for (const [p, c] of Object.entries(files))
        expect(await text(await fs.readSnapshotFile(id, p)), `${id}:${p}`).toBe(c);
    }
    for (const [p, c] of Object.entries(want['s4']!)) expect(await text(await fs.readFile(p))).toBe(c);
    // the emptied directory went with its last file
    await expect(stat(path.join(root, 'snapshots/s2/dir/deep'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await readlink(path.join(root, 'snapshots/s4/dir/link'))).toBe('b.txt');

    const s = (n: number, p: string): string => path.join(root, 'snapshots', `s${n}`, p);
    // unchanged → same inode; changed → a new one
    expect(await ino(s(2, 'dir/b.txt'))).toBe(await ino(s(1, 'dir/b.txt')));
    expect(await ino(s(3, 'a.txt'))).toBe(await ino(s(2, 'a.txt')));
    expect(await ino(s(4, 'a.txt'))).toBe(await ino(s(2, 'a.txt')));
    expect(await ino(s(4, 'dir/b.txt'))).toBe(await ino(s(3, 'dir/b.txt')));
    expect(await ino(s(2, 'a.txt'))).not.toBe(await ino(s(1, 'a.txt')));
    expect(await ino(s(3, 'dir/b.txt'))).not.toBe(await ino(s(2, 'dir/b.txt')));
    expect(await ino(s(4, 'new.txt'))).not.toBe(await ino(s(3, 'new.txt')));
    expect((await lstat(s(4, 'a.txt'))).nlink).toBe(3);

    // nothing but the layout is left
    expect((await readdir(root)).sort()).toEqual(['current', 'snapshots']);
    expect((await readdir(path.join(root, 'snapshots'))).sort()).toEqual([
      's1',
      's1.json',
      's2',
      's2.json',
      's3',
      's3.json',
      's4',
      's4.json',
    ]);
    expect(await listPosixRepositories(sb.base)).toEqual(['repo']);
  });

  it('seals snapshots: no write bit on any file or directory (root can still write; the bits are the guarantee)', async () => {
    const { fs, root } = sb;
    await sync(fs, 1, { 'a.txt': 'A', 'd/e/f.txt': 'F' });
    await sync(fs, 2, { 'b.txt': 'B' });
    for (const n of [1, 2]) {
      for (const line of await listing(path.join(root, 'snapshots', `s${n}`))) {
        const mode = Number.parseInt(/mode=(\d+)/.exec(line)![1]!, 8);
        if (!line.includes(' -> ')) expect(mode & 0o222, line).toBe(0);
      }
      expect((await stat(path.join(root, 'snapshots', `s${n}`))).mode & 0o222).toBe(0);
    }
  });
});

describe('rollback', () => {
  it('leaves the whole repository byte-identical (inodes, link counts, modes, mtimes, targets, contents)', async () => {
    const { fs, root } = sb;
    await sync(fs, 1, { 'a.txt': 'A', 'd/b.txt': 'B', 'd/c.txt': 'C' });
    await sync(fs, 2, { 'a.txt': 'A2' });
    const before = await listing(root);
    const tx = txId();
    await fs.begin(tx);
    await put(fs, tx, 'a.txt', 'changed');
    await put(fs, tx, 'new/deep/x.txt', 'X');
    await fs.deleteFile(tx, 'd/b.txt');
    await fs.writeLink(tx, 'lnk', 'a.txt');
    const report = await fs.rollback(tx);
    expect(report.leftovers).toEqual([]);
    expect(report.removed).toContain(`tx/${tx}`);
    // the one trace: its verified uploads, parked for the next transaction
    expect((await listing(root)).filter((l) => !l.startsWith('parked'))).toEqual(before);
    expect(await fs.parkedContent()).toEqual([hashOf('changed'), hashOf('X')].sort());
    // and it never throws, even twice or for garbage
    expect(await fs.rollback(tx)).toEqual({ removed: [], leftovers: [] });
    expect((await fs.rollback('nope' as never)).leftovers).toHaveLength(1);
  });

  it('removes a failed init without making a repository', async () => {
    const tx = txId();
    await sb.fs.begin(tx);
    await put(sb.fs, tx, 'a', 'A');
    await sb.fs.rollback(tx);
    expect(await sb.fs.exists()).toBe(false);
    expect(await listPosixRepositories(sb.base)).toEqual([]);
  });
});

describe('writes', () => {
  it('refuses a hash or size mismatch and leaves nothing behind', async () => {
    const { fs, root } = sb;
    await sync(fs, 1, { 'a.txt': 'A' });
    const tx = txId();
    await fs.begin(tx);
    const work = path.join(root, 'tx', tx);
    const before = await listing(work);
    await expect(fs.writeFile(tx, 'x/y/z.txt', streamOf('hello'), { hash: hashOf('other') })).rejects.toMatchObject({
      name: 'ValidationError',
      code: 'HASH_MISMATCH',
    });
    await expect(
      fs.writeFile(tx, 'a.txt', streamOf('hello'), { hash: hashOf('hello'), size: 6 }),
    ).rejects.toBeInstanceOf(ValidationError);
    expect(await listing(work)).toEqual(before);
    await fs.rollback(tx);
  });

  it('a stream that fails half-way leaves nothing behind', async () => {
    const { fs, root } = sb;
    const tx = txId();
    await fs.begin(tx);
    const work = path.join(root, 'tx', tx);
    const before = await listing(work);
    async function* broken(): AsyncGenerator<Uint8Array> {
      yield Buffer.from('part');
      await Promise.resolve();
      throw new Error('connection lost');
    }
    await expect(fs.writeFile(tx, 'p/q.txt', broken(), { hash: hashOf('partial') })).rejects.toThrow('connection lost');
    expect(await listing(work)).toEqual(before);
    await fs.rollback(tx);
  });

  it('many concurrent writes, deletes and failures in shared new directories', async () => {
    const { fs } = sb;
    const tx = txId();
    await fs.begin(tx);
    const jobs: Promise<unknown>[] = [];
    for (let i = 0; i < 200; i++) {
      const p = `c${i % 4}/d${i % 3}/f${i}.txt`;
      if (i % 5 === 0) jobs.push(fs.writeFile(tx, p, streamOf('bad'), { hash: hashOf('good') }).catch(() => 'refused'));
      else jobs.push(put(fs, tx, p, `F${i}`));
    }
    await Promise.all(jobs);
    await fs.commit(tx, {
      snapshotId: 's1',
      message: '',
      manifestHash: '',
      user: 'u',
      createdAt: '2026-01-01T00:00:00Z',
    });
    for (let i = 0; i < 200; i++) {
      expect(await text(await fs.readFile(`c${i % 4}/d${i % 3}/f${i}.txt`))).toBe(i % 5 === 0 ? null : `F${i}`);
    }
  });

  it('never writes through a hard link: replacing a file leaves the snapshot inode untouched', async () => {
    const { fs, root } = sb;
    await sync(fs, 1, { 'a.txt': 'original' });
    const snapFile = path.join(root, 'snapshots/s1/a.txt');
    const st = await lstat(snapFile);
    const tx = txId();
    await fs.begin(tx);
    expect((await lstat(path.join(root, 'tx', tx, 'a.txt'))).ino).toBe(st.ino);
    await put(fs, tx, 'a.txt', 'replaced');
    await fs.deleteFile(tx, 'a.txt');
    await put(fs, tx, 'a.txt', 'again');
    expect(await readFile(snapFile, 'utf8')).toBe('original');
    expect((await lstat(snapFile)).mtimeMs).toBe(st.mtimeMs);
    await fs.commit(tx, {
      snapshotId: 's2',
      message: '',
      manifestHash: '',
      user: 'u',
      createdAt: '2026-01-02T00:00:00Z',
    });
    expect(await text(await fs.readSnapshotFile('s1', 'a.txt'))).toBe('original');
    expect(await text(await fs.readFile('a.txt'))).toBe('again');
  });

  it('copyFile makes a new inode: the snapshot file it copied keeps its bytes, mode and mtime', async () => {
    const { fs, root } = sb;
    await sync(fs, 1, { 'a.txt': 'original' });
    const snapFile = path.join(root, 'snapshots/s1/a.txt');
    const st = await lstat(snapFile);
    const tx = txId();
    await fs.begin(tx);
    const expected = { hash: hashOf('original'), size: 8, mtime: '2020-02-03T04:05:06Z' };
    expect(await fs.copyFile(tx, 'a.txt', 'b.txt', expected)).toEqual({ size: 8 });
    expect(await fs.copyFile(tx, 'a.txt', 'a.txt', expected)).toEqual({ size: 8 }); // a revert of its mtime
    for (const name of ['a.txt', 'b.txt']) {
      const copy = await stat(path.join(root, 'tx', tx, name));
      expect(copy.ino).not.toBe(st.ino);
      expect(copy.mtime.toISOString()).toBe('2020-02-03T04:05:06.000Z');
    }
    expect(await lstat(snapFile)).toMatchObject({ ino: st.ino, mode: st.mode, mtimeMs: st.mtimeMs, nlink: 1 });
    expect(await readFile(snapFile, 'utf8')).toBe('original');
    await fs.rollback(tx);
  });

  it('applies the given mtime', async () => {
    const tx = txId();
    await sb.fs.begin(tx);
    await sb.fs.writeFile(tx, 'm.txt', streamOf('m'), { hash: hashOf('m'), mtime: '2020-02-03T04:05:06Z' });
    expect((await stat(path.join(sb.root, 'tx', tx, 'm.txt'))).mtime.toISOString()).toBe('2020-02-03T04:05:06.000Z');
    await sb.fs.rollback(tx);
  });

  it('refuses to write into a transaction that was never begun', async () => {
    await expect(sb.fs.writeFile(txId(), 'a', streamOf('a'), { hash: hashOf('a') })).rejects.toBeInstanceOf(
      NotFoundError,
    );
  });
});

describe('commit rules', () => {
  it('refuses a snapshot id that is not the next one, and keeps the work area for rollback', async () => {
    const { fs, root } = sb;
    await sync(fs, 1, { a: 'A' });
    const tx = txId();
    await fs.begin(tx);
    const info = { message: '', manifestHash: '', user: 'u', createdAt: '2026-01-02T00:00:00Z' };
    await expect(fs.commit(tx, { ...info, snapshotId: 's3' })).rejects.toBeInstanceOf(TransactionCommitError);
    await expect(fs.commit(tx, { ...info, snapshotId: 's1' })).rejects.toBeInstanceOf(TransactionCommitError);
    await expect(fs.commit(tx, { ...info, snapshotId: '../s2' })).rejects.toBeInstanceOf(ValidationError);
    expect(await readlink(path.join(root, 'current'))).toBe('snapshots/s1');
    await fs.commit(tx, { ...info, snapshotId: 's2' });
    expect(await readlink(path.join(root, 'current'))).toBe('snapshots/s2');
  });

  it('a repeated commit of the same transaction succeeds again; another tx cannot claim it', async () => {
    const { fs } = sb;
    const tx = await sync(fs, 1, { a: 'A' });
    const info = { snapshotId: 's1', message: '', manifestHash: '', user: 'u', createdAt: '2026-01-01T00:00:00Z' };
    await fs.commit(tx, info);
    await expect(fs.commit(txId(), info)).rejects.toBeInstanceOf(NotFoundError);
    expect((await fs.listSnapshots()).map((s) => s.snapshotId)).toEqual(['s1']);
  });

  it('refuses when another transaction committed since begin', async () => {
    const { fs } = sb;
    await sync(fs, 1, { a: 'A' });
    const slow = txId();
    await fs.begin(slow);
    await sync(fs, 2, { a: 'A2' });
    await expect(
      fs.commit(slow, {
        snapshotId: 's3',
        message: '',
        manifestHash: '',
        user: 'u',
        createdAt: '2026-01-03T00:00:00Z',
      }),
    ).rejects.toThrow(/current moved/);
    expect((await fs.listSnapshots()).map((s) => s.snapshotId)).toEqual(['s1', 's2']);
  });

  it('mountSnapshot gives the read-only snapshot directory', async () => {
    await sync(sb.fs, 1, { a: 'A' });
    const dir = await sb.fs.mountSnapshot('s1');
    expect(dir).toBe(path.join(sb.root, 'snapshots/s1'));
    expect(await readFile(path.join(dir, 'a'), 'utf8')).toBe('A');
    await sb.fs.unmountSnapshot(dir);
    await expect(sb.fs.mountSnapshot('s2')).rejects.toBeInstanceOf(NotFoundError);
    // only a snapshot directory of this repository is "unmounted"; anything else is named as not mounted
    for (const at of [sb.root, path.join(sb.root, 'current'), path.join(sb.root, 'snapshots', 'x1'), '/tmp/s1']) {
      await expect(sb.fs.unmountSnapshot(at)).rejects.toBeInstanceOf(NotFoundError);
    }
    expect(await readFile(path.join(dir, 'a'), 'utf8')).toBe('A');
  });
});
