import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, open, readFile, readlink, statfs } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { cloneTree, PosixRemoteFilesystem } from '../src/index.js';
import { put, sandbox, sync, text, txId, xxh3Hasher, type Sandbox } from './helpers.js';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

/** Bytes actually allocated under dir (each hard-linked inode counted once, as du does). */
function allocated(dir: string): number {
  return Number(execFileSync('du', ['-s', '-B1', dir], { encoding: 'utf8' }).split('\t')[0]);
}

async function freeBytes(dir: string): Promise<number> {
  const s = await statfs(dir);
  return s.bfree * s.bsize;
}

let sb: Sandbox;
beforeEach(async () => {
  sb = await sandbox();
});
afterEach(async () => {
  await sb.cleanup();
});

describe('space', () => {
  it('a sync changing one small file next to a 2 GB file allocates no copy of the big one', async () => {
    const { fs, root } = sb;
    const tx = txId();
    const { workPath } = await fs.begin(tx);
    // 2 GB logical, of which 128 MiB real data (a copy of it would allocate at least that)
    const fh = await open(path.join(workPath, 'big.bin'), 'wx', 0o644);
    const block = randomBytes(MiB);
    for (let i = 0; i < 128; i++) await fh.write(block, 0, MiB, i * MiB);
    await fh.truncate(2 * GiB);
    await fh.sync();
    await fh.close();
    for (let i = 0; i < 20; i++) await put(fs, tx, `small/${i}.txt`, `small ${i}`);
    await fs.commit(tx, {
      snapshotId: 's1',
      message: 'big',
      manifestHash: 'h',
      user: 'u',
      createdAt: '2026-01-01T00:00:00Z',
    });
    const bigSize = (await lstat(path.join(root, 'snapshots/s1/big.bin'))).size;
    expect(bigSize).toBe(2 * GiB);

    const duBefore = allocated(root);
    const freeBefore = await freeBytes(root);
    expect(duBefore).toBeGreaterThan(128 * MiB);
    await sync(fs, 2, { 'small/3.txt': 'changed' });
    const duAfter = allocated(root);
    const freeAfter = await freeBytes(root);

    const cost = duAfter - duBefore;
    console.log(
      `[posix-ops] sync next to a 2 GiB file (128 MiB allocated): du +${cost} bytes, ` +
        `statfs free −${freeBefore - freeAfter} bytes (whole disk, other writers included)`,
    );
    // new: one small file, the snapshot's directories and its metadata file
    expect(cost).toBeLessThan(MiB);
    expect((await lstat(path.join(root, 'snapshots/s2/big.bin'))).ino).toBe(
      (await lstat(path.join(root, 'snapshots/s1/big.bin'))).ino,
    );
    expect(await text(await fs.readSnapshotFile('s1', 'small/3.txt'))).toBe('small 3');
    expect(await text(await fs.readFile('small/3.txt'))).toBe('changed');
  });
});

describe('when hard links are refused', () => {
  const refuse = (code: string) => (): Promise<void> =>
    Promise.reject(Object.assign(new Error(`${code}: refused (test)`), { code }));

  it.each(['EXDEV', 'EPERM', 'EMLINK'])(
    '%s → the work area gets copies (reflink where possible), snapshots stay intact',
    async (code) => {
      const { root } = sb;
      await sync(sb.fs, 1, { 'a.txt': 'A', 'd/b.txt': 'B' });
      const fs = new PosixRemoteFilesystem({ root, hasher: xxh3Hasher, linkFile: refuse(code) });
      const tx = txId();
      const { workPath } = await fs.begin(tx);
      const a1 = await lstat(path.join(root, 'snapshots/s1/a.txt'));
      const aw = await lstat(path.join(workPath, 'a.txt'));
      expect(aw.ino).not.toBe(a1.ino);
      expect(Math.abs(aw.mtimeMs - a1.mtimeMs)).toBeLessThan(0.01);
      expect(a1.nlink).toBe(1);
      expect(await readFile(path.join(workPath, 'd/b.txt'), 'utf8')).toBe('B');
      await put(fs, tx, 'a.txt', 'A2');
      await fs.commit(tx, {
        snapshotId: 's2',
        message: '',
        manifestHash: '',
        user: 'u',
        createdAt: '2026-01-02T00:00:00Z',
      });
      expect(await text(await fs.readSnapshotFile('s1', 'a.txt'))).toBe('A');
      expect(await text(await fs.readFile('d/b.txt'))).toBe('B');
    },
  );

  it('any other link() failure is an error, not a silent copy', async () => {
    await sync(sb.fs, 1, { 'a.txt': 'A' });
    const fs = new PosixRemoteFilesystem({ root: sb.root, hasher: xxh3Hasher, linkFile: refuse('EIO') });
    await expect(fs.begin(txId())).rejects.toMatchObject({ code: 'EIO' });
    expect((await fs.recover()).leftovers).toEqual([]);
  });

  it('cloneTree links files, re-creates links and directories, and reports what it did', async () => {
    const tx = txId();
    await sb.fs.begin(tx);
    await put(sb.fs, tx, 'a.txt', 'A');
    await put(sb.fs, tx, 'd/b.txt', 'B');
    await put(sb.fs, tx, 'd/e/c.txt', 'C');
    await sb.fs.writeLink(tx, 'd/l', 'b.txt');
    await sb.fs.commit(tx, {
      snapshotId: 's1',
      message: '',
      manifestHash: '',
      user: 'u',
      createdAt: '2026-01-01T00:00:00Z',
    });
    const dst = path.join(sb.base, 'clone');
    await mkdir(dst);
    const src = path.join(sb.root, 'snapshots/s1');
    expect(await cloneTree(src, dst)).toEqual({ files: 3, links: 1, dirs: 2, copied: 0 });
    expect((await lstat(path.join(dst, 'd/e/c.txt'))).ino).toBe((await lstat(path.join(src, 'd/e/c.txt'))).ino);
    expect(await readlink(path.join(dst, 'd/l'))).toBe('b.txt');
  });
});
