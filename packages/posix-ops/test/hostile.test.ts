import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { NotFoundError, ValidationError, type TransactionId } from '@dsg/contracts';
import { PosixRemoteFilesystem } from '../src/index.js';
import { hashOf, listing, put, sandbox, streamOf, sync, txId, xxh3Hasher, type Sandbox } from './helpers.js';

const HOSTILE = [
  '../x',
  'a/../../x',
  '..',
  '/etc/passwd',
  '/tmp/x',
  'a\0b',
  '',
  'a//b',
  './a',
  'a/./b',
  'a/',
  'a\\..\\b',
  'C:', // a drive
  'C:/x', // a drive-rooted path (the original lets it through; on Windows it is drive C)
  'x'.repeat(5000),
  `a/${'y'.repeat(300)}`,
];

let sb: Sandbox;
let outside: string;
let tx: TransactionId;
let work: string;
beforeEach(async () => {
  sb = await sandbox();
  outside = await mkdtemp(path.join(os.tmpdir(), 'dsg-outside-'));
  await sync(sb.fs, 1, { 'a.txt': 'A', 'dir/b.txt': 'B' });
  tx = txId();
  work = (await sb.fs.begin(tx)).workPath;
  // planted as if by a hostile earlier writer: an absolute link out of the tree
  await symlink(outside, path.join(work, 'escape'));
  await sb.fs.writeLink(tx, 'inner', 'dir');
});
afterEach(async () => {
  await sb.cleanup();
  await rm(outside, { recursive: true, force: true });
});

async function refusedEverywhere(p: string): Promise<void> {
  const { fs } = sb;
  const before = await listing(sb.root);
  await expect(
    fs.writeFile(tx, p, streamOf('evil'), { hash: hashOf('evil') }),
    `writeFile ${p}`,
  ).rejects.toBeInstanceOf(ValidationError);
  await expect(fs.writeLink(tx, p, 'a.txt'), `writeLink ${p}`).rejects.toBeInstanceOf(ValidationError);
  await expect(fs.deleteFile(tx, p), `deleteFile ${p}`).rejects.toBeInstanceOf(ValidationError);
  await expect(fs.copyFile(tx, 'a.txt', p, { hash: hashOf('A') }), `copyFile to ${p}`).rejects.toBeInstanceOf(
    ValidationError,
  );
  await expect(fs.copyFile(tx, p, 'copy.txt', { hash: hashOf('evil') }), `copyFile from ${p}`).rejects.toBeInstanceOf(
    ValidationError,
  );
  expect(await listing(sb.root)).toEqual(before);
  expect(await readdir(outside)).toEqual([]);
}

describe('hostile paths are refused with ValidationError and nothing is written', () => {
  it.each(HOSTILE.map((p) => [JSON.stringify(p).slice(0, 60), p]))('%s', async (_label, p) => {
    await refusedEverywhere(p);
    await expect(sb.fs.readFile(p)).rejects.toBeInstanceOf(ValidationError);
    await expect(sb.fs.readSnapshotFile('s1', p)).rejects.toBeInstanceOf(ValidationError);
  });

  it('a symlink escaping the work area', async () => {
    await refusedEverywhere('escape/x');
    await refusedEverywhere('escape/deeper/x');
  });

  it('a symlink written by an earlier writeLink, even one pointing inside', async () => {
    await refusedEverywhere('inner/x');
    await refusedEverywhere('inner/new/x');
  });

  it('copyFile never reads beyond a symbolic link, nor a link, a FIFO or a directory itself', async () => {
    await writeFile(path.join(outside, 'secret'), 'S');
    const before = await listing(sb.root);
    for (const [from, content] of [
      ['escape/secret', 'S'], // a hostile symlinked parent pointing out of the tree
      ['inner/b.txt', 'B'], // a parent linked by writeLink, pointing inside
      ['inner', 'B'],
      ['dir', ''],
    ] as const) {
      await expect(sb.fs.copyFile(tx, from, 'copy.txt', { hash: hashOf(content) }), from).rejects.toBeInstanceOf(
        ValidationError,
      );
    }
    expect(await listing(sb.root)).toEqual(before);
    expect(await readdir(outside)).toEqual(['secret']);
    // O_NONBLOCK: a FIFO planted in the work area is refused, not waited on (and listing() would block on it)
    execFileSync('mkfifo', [path.join(work, 'fifo')]);
    await expect(sb.fs.copyFile(tx, 'fifo', 'copy.txt', { hash: hashOf('') })).rejects.toBeInstanceOf(ValidationError);
    expect((await readdir(work)).sort()).toEqual(['a.txt', 'dir', 'escape', 'fifo', 'inner']);
  });

  it('a regular file used as a directory', async () => {
    await refusedEverywhere('a.txt/x');
  });

  it('reading through a symlink of a snapshot, or a symlink itself', async () => {
    await sb.fs.commit(tx, {
      snapshotId: 's2',
      message: '',
      manifestHash: '',
      user: 'u',
      createdAt: '2026-01-02T00:00:00Z',
    });
    await expect(sb.fs.readFile('inner/b.txt')).rejects.toBeInstanceOf(ValidationError);
    await expect(sb.fs.readFile('escape/x')).rejects.toBeInstanceOf(ValidationError);
    await expect(sb.fs.readFile('inner')).rejects.toBeInstanceOf(ValidationError);
    await expect(sb.fs.readFile('dir')).rejects.toBeInstanceOf(ValidationError);
  });

  it.each([
    ['l', '../../etc'],
    ['l', '/etc/passwd'],
    ['l', 'dir/../../x'],
    ['l', '../repo2'],
    ['sub/l', '../../x'],
    ['sub/deep/l', '../../../snapshots'],
    ['l', 'a\0b'],
    ['l', ''],
    ['l', 'a\\b'],
  ])('link %s → %j', async (at, target) => {
    const before = await listing(sb.root);
    await expect(sb.fs.writeLink(tx, at, target)).rejects.toBeInstanceOf(ValidationError);
    expect(await listing(sb.root)).toEqual(before);
  });

  it('relative link targets that stay inside are fine', async () => {
    await sb.fs.writeLink(tx, 'sub/deep/l', '../../dir/b.txt');
    await sb.fs.writeLink(tx, 'sub/l2', '../a.txt');
  });

  it('a file over a directory, and deleting a directory', async () => {
    await expect(put(sb.fs, tx, 'dir', 'x')).rejects.toBeInstanceOf(ValidationError);
    await expect(sb.fs.writeLink(tx, 'dir', 'a.txt')).rejects.toBeInstanceOf(ValidationError);
    await expect(sb.fs.deleteFile(tx, 'dir')).rejects.toBeInstanceOf(ValidationError);
  });

  it.each(['s0', 's01', '../s1', 's1/..', 'S1', '1', 's-1', 'current', ''])('snapshot id %j', async (id) => {
    await expect(sb.fs.readSnapshotFile(id, 'a.txt')).rejects.toBeInstanceOf(ValidationError);
    await expect(sb.fs.mountSnapshot(id)).rejects.toBeInstanceOf(ValidationError);
  });

  it('a snapshot that does not exist (yet) is NotFound', async () => {
    await expect(sb.fs.readSnapshotFile('s2', 'a.txt')).rejects.toBeInstanceOf(NotFoundError);
  });

  it.each(['../../x', 'nope', '20261125T101112123Z-3f9a1c0', ''])('transaction id %j', async (bad) => {
    const t = bad as TransactionId;
    await expect(sb.fs.begin(t)).rejects.toBeInstanceOf(ValidationError);
    await expect(put(sb.fs, t, 'x', 'x')).rejects.toBeInstanceOf(ValidationError);
    await expect(
      sb.fs.commit(t, {
        snapshotId: 's2',
        message: '',
        manifestHash: '',
        user: 'u',
        createdAt: '2026-01-02T00:00:00Z',
      }),
    ).rejects.toBeInstanceOf(ValidationError);
    expect((await sb.fs.rollback(t)).removed).toEqual([]);
  });

  it('a relative repository root', () => {
    expect(() => new PosixRemoteFilesystem({ root: 'rel/repo', hasher: xxh3Hasher })).toThrow(ValidationError);
  });

  it('a begin reusing a live transaction id', async () => {
    await expect(sb.fs.begin(tx)).rejects.toMatchObject({ code: 'TX_EXISTS' });
  });

  it('layout names in the tree are just data', async () => {
    await put(sb.fs, tx, 'current', 'c');
    await put(sb.fs, tx, 'snapshots/s9', 'x');
    await put(sb.fs, tx, 'lock', 'l');
    await mkdir(path.join(outside, 'unused'));
    await sb.fs.commit(tx, {
      snapshotId: 's2',
      message: '',
      manifestHash: '',
      user: 'u',
      createdAt: '2026-01-02T00:00:00Z',
    });
    expect((await sb.fs.listSnapshots()).map((s) => s.snapshotId)).toEqual(['s1', 's2']);
  });
});
