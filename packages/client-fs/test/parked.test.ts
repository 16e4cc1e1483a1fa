import { spawnSync } from 'node:child_process';
import { lstat, mkdir, readdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { newTransactionId } from '@dsg/contracts';
import { LocalClientFilesystem, recoverClient } from '../src/index.js';
import { bytes, exists, hashOf, tempProject, testHasher, tree } from './helpers.js';

const ORIGINAL = { 'input/a.txt': 'A1', 'output/keep.txt': 'K', '.dsg/last-sync.json': '{"v":1}' };
const BIG = 'x'.repeat(3 * 1024 * 1024 + 17); // more than one read step of the copy
const MTIME = '2025-06-01T10:11:12-07:00';
const parked = (root: string, content: string): string => path.join(root, '.dsg/parked', hashOf(content));
const newFs = (root: string, extra: { parkedTtlMs?: number; now?: () => number } = {}): LocalClientFilesystem =>
  new LocalClientFilesystem({ root, hasher: testHasher, ...extra });

/** A download staged, then the transaction rolled back (Ctrl-C, a dropped connection). */
async function interrupted(root: string, files: Record<string, string>): Promise<void> {
  const fs = newFs(root);
  const tx = newTransactionId();
  await fs.begin(tx);
  for (const [p, c] of Object.entries(files)) await fs.stageFile(tx, p, bytes(c), { hash: hashOf(c) });
  expect((await fs.rollback(tx)).leftovers).toEqual([]);
}

describe('parked downloads', () => {
  it('a staged download survives a rollback parked (never in the tree) and the next transaction places it without the wire', async () => {
    const root = await tempProject(ORIGINAL);
    await interrupted(root, { 'input/a.txt': BIG, 'input/new.txt': 'N' });
    expect(await tree(root)).toEqual({ 'input/a.txt': 'A1', 'output/keep.txt': 'K' });
    expect((await lstat(parked(root, BIG))).isFile()).toBe(true);
    expect(await readdir(path.join(root, '.dsg/staging'))).toEqual([]);

    const fs = newFs(root);
    const tx = newTransactionId();
    await fs.begin(tx);
    expect(await fs.stageParked(tx, 'input/a.txt', { hash: hashOf(BIG), size: BIG.length, mtime: MTIME })).toBe(true);
    expect(await fs.stageParked(tx, 'input/new.txt', { hash: hashOf('N').toUpperCase() })).toBe(true);
    expect(await tree(root)).toEqual({ 'input/a.txt': 'A1', 'output/keep.txt': 'K' }); // nothing before commit
    await fs.setRemoteSnapshot(tx, 's2');
    await fs.commit(tx);
    expect(await tree(root)).toEqual({ 'input/a.txt': BIG, 'input/new.txt': 'N', 'output/keep.txt': 'K' });
    expect((await lstat(path.join(root, 'input/a.txt'))).mtime.toISOString()).toBe('2025-06-01T17:11:12.000Z');
    // committed: no longer parked
    expect(await readdir(path.join(root, '.dsg/parked'))).toEqual([]);
  });

  it('a placed file is a copy: its own inode, even when one hash lands at two paths', async () => {
    const root = await tempProject(ORIGINAL);
    await interrupted(root, { 'input/c.txt': 'C' });
    const fs = newFs(root);
    const tx = newTransactionId();
    await fs.begin(tx);
    expect(await fs.stageParked(tx, 'input/c1.txt', { hash: hashOf('C') })).toBe(true);
    expect(await fs.stageParked(tx, 'input/c2.txt', { hash: hashOf('C') })).toBe(true);
    const p = await lstat(parked(root, 'C'));
    await fs.commit(tx);
    const [c1, c2] = await Promise.all([
      lstat(path.join(root, 'input/c1.txt')),
      lstat(path.join(root, 'input/c2.txt')),
    ]);
    expect(new Set([c1.ino, c2.ino, p.ino]).size).toBe(3);
    expect(c1.nlink).toBe(1);
    expect(c2.nlink).toBe(1);
  });

  it('a download committed normally is not left parked', async () => {
    const root = await tempProject(ORIGINAL);
    const fs = newFs(root);
    const tx = newTransactionId();
    await fs.begin(tx);
    await fs.stageFile(tx, 'input/a.txt', bytes('A2'), { hash: hashOf('A2') });
    expect(await exists(parked(root, 'A2'))).toBe(true); // parked as soon as it verified
    await fs.commit(tx);
    expect(await exists(parked(root, 'A2'))).toBe(false);
    expect((await lstat(path.join(root, 'input/a.txt'))).nlink).toBe(1);
  });

  it('survives recovery of an interrupted transaction: journal rolled back, or staging without a journal', async () => {
    const root = await tempProject(ORIGINAL);
    const fs = newFs(root);
    const t1 = newTransactionId();
    await fs.begin(t1);
    await fs.stageFile(t1, 'input/a.txt', bytes('A2'), { hash: hashOf('A2') });
    await fs.setRemoteSnapshot(t1, 's2'); // journal written; the remote never committed s2
    const t2 = newTransactionId();
    await fs.begin(t2);
    await fs.stageFile(t2, 'input/b.txt', bytes('B2'), { hash: hashOf('B2') });
    const r = await recoverClient(root, () => Promise.resolve(false));
    expect(r.leftovers).toEqual([]);
    expect(r.transactions).toEqual([
      { transactionId: t1, action: 'rolled-back' },
      { transactionId: t2, action: 'cleaned' },
    ]);
    expect(await tree(root)).toEqual({ 'input/a.txt': 'A1', 'output/keep.txt': 'K' });
    expect(await readdir(path.join(root, '.dsg/staging'))).toEqual([]);
    expect((await readdir(path.join(root, '.dsg/parked'))).sort()).toEqual([hashOf('A2'), hashOf('B2')].sort());

    const next = newFs(root);
    const tx = newTransactionId();
    await next.begin(tx);
    expect(await next.stageParked(tx, 'input/a.txt', { hash: hashOf('A2'), size: 2 })).toBe(true);
    expect(await next.stageParked(tx, 'input/b.txt', { hash: hashOf('B2') })).toBe(true);
    await next.commit(tx);
    expect(await tree(root)).toEqual({ 'input/a.txt': 'A2', 'input/b.txt': 'B2', 'output/keep.txt': 'K' });
  });

  it('after the client was killed with staging in place (no rollback ran), recovery keeps it and the next run places it', async () => {
    const root = await tempProject(ORIGINAL);
    const t1 = newTransactionId();
    const child = fileURLToPath(new URL('./fixtures/stage-child.mjs', import.meta.url));
    const res = spawnSync(process.execPath, [child, root, t1, 'input/a.txt', 'A2'], { encoding: 'utf8' });
    expect(res.stderr).toBe('');
    expect(res.stdout).toBe('staged\n');
    expect(await exists(path.join(root, '.dsg/staging', t1))).toBe(true);
    const r = await recoverClient(root, () => Promise.resolve(true));
    expect(r.transactions).toEqual([{ transactionId: t1, action: 'cleaned' }]);
    const fs = newFs(root);
    const tx = newTransactionId();
    await fs.begin(tx);
    expect(await fs.stageParked(tx, 'input/a.txt', { hash: hashOf('A2') })).toBe(true);
    await fs.commit(tx);
    expect(await tree(root)).toEqual({ 'input/a.txt': 'A2', 'output/keep.txt': 'K' });
    expect(await exists(parked(root, 'A2'))).toBe(false);
  });

  it('nothing parked, a link or a directory under the name: false, nothing staged', async () => {
    const root = await tempProject({ ...ORIGINAL, 'elsewhere.txt': 'L' });
    await mkdir(path.join(root, '.dsg/parked', hashOf('D')), { recursive: true });
    await symlink(path.join(root, 'elsewhere.txt'), parked(root, 'L'));
    const fs = newFs(root);
    const tx = newTransactionId();
    await fs.begin(tx);
    expect(await fs.stageParked(tx, 'input/a.txt', { hash: hashOf('unknown') })).toBe(false);
    expect(await fs.stageParked(tx, 'input/l.txt', { hash: hashOf('L') })).toBe(false);
    expect(await fs.stageParked(tx, 'input/d.txt', { hash: hashOf('D') })).toBe(false);
    expect(await exists(parked(root, 'L'))).toBe(true); // not content, but not removed through
    await fs.commit(tx);
    expect(await tree(root)).toEqual({ 'elsewhere.txt': 'L', 'input/a.txt': 'A1', 'output/keep.txt': 'K' });
  });

  it('parked content that no longer verifies: false, and removed; the download then stages normally', async () => {
    const root = await tempProject(ORIGINAL);
    await interrupted(root, { 'input/a.txt': 'A2' });
    await writeFile(parked(root, 'A2'), 'A3'); // damaged on disk
    const fs = newFs(root);
    const tx = newTransactionId();
    await fs.begin(tx);
    expect(await fs.stageParked(tx, 'input/a.txt', { hash: hashOf('A2') })).toBe(false);
    expect(await exists(parked(root, 'A2'))).toBe(false);
    expect(await exists(path.join(root, '.dsg/staging', tx, 'data/input/a.txt'))).toBe(false);
    await fs.stageFile(tx, 'input/a.txt', bytes('A2'), { hash: hashOf('A2') });
    await fs.commit(tx);
    expect(await tree(root)).toEqual({ 'input/a.txt': 'A2', 'output/keep.txt': 'K' });
  });

  it('applies the same gate as a download and refuses a hash that is not one', async () => {
    const root = await tempProject(ORIGINAL);
    await interrupted(root, { 'input/a.txt': 'A2' });
    const fs = newFs(root);
    const gated = new LocalClientFilesystem({ root, hasher: testHasher, canWrite: () => 'outside the data dirs' });
    const tx = newTransactionId();
    await gated.begin(tx);
    await expect(gated.stageParked(tx, 'elsewhere/a.txt', { hash: hashOf('A2') })).rejects.toMatchObject({
      code: 'OUT_OF_SCOPE',
    });
    for (const bad of ['.dsg/last-sync.json', 'x/.git/config', '../out.txt']) {
      await expect(fs.stageParked(tx, bad, { hash: hashOf('A2') })).rejects.toMatchObject({ code: 'VALIDATION' });
    }
    await expect(gated.stageMeta(tx, 'parked/x', Buffer.from('x'))).rejects.toMatchObject({ code: 'VALIDATION' });
    const own = newTransactionId();
    await fs.begin(own);
    await expect(fs.stageParked(own, 'input/a.txt', { hash: '../a' })).rejects.toThrow(/not a hash/);
    await fs.rollback(own);
    await gated.rollback(tx);
    expect(await exists(parked(root, 'A2'))).toBe(true);
  });

  it('expires: a begin removes parked content older than the TTL (by its ctime) and keeps younger', async () => {
    const root = await tempProject(ORIGINAL);
    await interrupted(root, { 'input/a.txt': 'A2' });
    const keep = newFs(root); // 72 h
    const t1 = newTransactionId();
    await keep.begin(t1);
    expect(await exists(parked(root, 'A2'))).toBe(true);
    await keep.rollback(t1);
    const later = newFs(root, { parkedTtlMs: 1000, now: () => Date.now() + 60_000 });
    const t2 = newTransactionId();
    await later.begin(t2);
    expect(await exists(parked(root, 'A2'))).toBe(false);
    expect(await later.stageParked(t2, 'input/a.txt', { hash: hashOf('A2') })).toBe(false);
    await later.rollback(t2);
  });
});
