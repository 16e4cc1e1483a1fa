import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, readdirSync, type Stats } from 'node:fs';
import { mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { NotFoundError, TransactionCommitError, ValidationError, type TransactionId } from '@dsg/contracts';
import {
  FlatRemoteFilesystem,
  PosixRemoteFilesystem,
  flatLockFile,
  isFlatRepository,
  listPosixAndFlatRepositories,
  openPosixRepository,
  posixLockFile,
} from '../src/index.js';
import { hashOf, listing, put, sandbox, streamOf, sync, text, txId, xxh3Hasher, type Sandbox } from './helpers.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const fixture = path.join(here, 'fixtures', 'flat-crash-sync.mjs');

const manifest = (n: number): string =>
  JSON.stringify({
    entries: {},
    metadata: {
      snapshot_id: `s${n}`,
      created_at: `2026-01-0${n}T00:00:00-08:00`,
      created_by: 'u@x',
      snapshot_message: `m${n}`,
      snapshot_hash: `h${n}`,
    },
  });

/** A flat repository as the original leaves it: the tree, `.dsg/` with the head s1, a non-data file and an empty dir. */
async function makeFlat(root: string): Promise<void> {
  await mkdir(path.join(root, '.dsg'), { recursive: true });
  await mkdir(path.join(root, 'empty/dir'), { recursive: true });
  await writeFile(path.join(root, '.dsg/last-sync.json'), manifest(1));
  await writeFile(
    path.join(root, '.dsg/sync-messages.json'),
    JSON.stringify({ metadata_version: '0.4.4', snapshots: {} }),
  );
  for (const [p, c] of Object.entries({
    'changed.txt': 'OLD',
    'kept.txt': 'K',
    'gone.txt': 'G',
    'README.md': 'not data',
  })) {
    await writeFile(path.join(root, p), c);
  }
}

async function flatSync(
  fs: FlatRemoteFilesystem,
  n: number,
  files: Record<string, string | null>,
): Promise<TransactionId> {
  const tx = txId();
  await fs.begin(tx);
  for (const [p, c] of Object.entries(files)) {
    if (c === null) await fs.deleteFile(tx, p);
    else await put(fs as unknown as PosixRemoteFilesystem, tx, p, c);
  }
  await put(fs as unknown as PosixRemoteFilesystem, tx, '.dsg/last-sync.json', manifest(n));
  await fs.commit(tx, {
    snapshotId: `s${n}`,
    message: `m${n}`,
    manifestHash: `h${n}`,
    user: 'u@x',
    createdAt: '2026-01-01T00:00:00Z',
  });
  return tx;
}

/** Files with inode, size and content; directories by name only (renames change their mtimes). */
async function tree(root: string): Promise<string[]> {
  return (await listing(root))
    .filter((l) => !l.startsWith('.dsg/tx'))
    .map((l) => (l.endsWith(' dir') ? l.replace(/ ino=.*$/, ' dir') : l));
}

/** The work areas left in `.dsg/tx` (parked content is kept there on purpose: see the parked tests). */
function workAreas(root: string): string[] {
  const dir = path.join(root, '.dsg/tx');
  return existsSync(dir) ? readdirSync(dir).filter((n) => n !== 'parked') : [];
}

let sb: Sandbox;
let fs: FlatRemoteFilesystem;
beforeEach(async () => {
  sb = await sandbox();
  await makeFlat(sb.root);
  fs = new FlatRemoteFilesystem({ root: sb.root, hasher: xxh3Hasher });
});
afterEach(async () => {
  delete process.env['DSG_FAULT'];
  await sb.cleanup();
});

describe('choosing the layout', () => {
  it('a tree with .dsg/last-sync.json and no current is flat; a snapshot repository is not', async () => {
    expect(isFlatRepository(sb.root)).toBe(true);
    expect(openPosixRepository(sb.root, { hasher: xxh3Hasher })).toBeInstanceOf(FlatRemoteFilesystem);
    expect(posixLockFile(sb.root)).toBe(flatLockFile(sb.root));
    expect(flatLockFile(sb.root)).toBe(path.join(sb.base, '.repo.dsg-lock'));
    const other = path.join(sb.base, 'snap');
    await sync(new PosixRemoteFilesystem({ root: other, hasher: xxh3Hasher }), 1, { 'a.txt': 'A' });
    expect(isFlatRepository(other)).toBe(false);
    expect(openPosixRepository(other, { hasher: xxh3Hasher, preferFlat: true })).toBeInstanceOf(PosixRemoteFilesystem);
    expect(posixLockFile(other)).toBe(path.join(other, 'lock'));
    // a new repository: flat only when asked (type xfs)
    expect(openPosixRepository(path.join(sb.base, 'new'), { hasher: xxh3Hasher })).toBeInstanceOf(
      PosixRemoteFilesystem,
    );
    expect(openPosixRepository(path.join(sb.base, 'new'), { hasher: xxh3Hasher, preferFlat: true })).toBeInstanceOf(
      FlatRemoteFilesystem,
    );
    expect(await listPosixAndFlatRepositories(sb.base)).toEqual(['repo', 'snap']);
    // a file or directory named current is data of a flat repository; only a current link marks the other layout
    await mkdir(path.join(sb.root, 'current'));
    expect(isFlatRepository(sb.root)).toBe(true);
    expect(await fs.exists()).toBe(true);
    // an init in progress keeps the layout it started with, whatever the caller prefers
    await mkdir(path.join(sb.base, 'flat-init', '.dsg', 'tx'), { recursive: true });
    await mkdir(path.join(sb.base, 'snap-init', 'tx'), { recursive: true });
    expect(openPosixRepository(path.join(sb.base, 'flat-init'), { hasher: xxh3Hasher })).toBeInstanceOf(
      FlatRemoteFilesystem,
    );
    expect(posixLockFile(path.join(sb.base, 'flat-init'))).toBe(path.join(sb.base, '.flat-init.dsg-lock'));
    expect(
      openPosixRepository(path.join(sb.base, 'snap-init'), { hasher: xxh3Hasher, preferFlat: true }),
    ).toBeInstanceOf(PosixRemoteFilesystem);
    expect(await listPosixAndFlatRepositories(sb.base)).toEqual(['repo', 'snap']);
  });
});

describe('a transaction on a flat repository', () => {
  it('begin/write/delete/commit replaces files in place and makes last-sync.json the head, nothing else touched', async () => {
    const before = await tree(sb.root);
    const readme = before.find((l) => l.startsWith('README.md'));
    const tx = txId();
    expect(await fs.begin(tx)).toMatchObject({ pattern: 'sync' });
    await put(fs as unknown as PosixRemoteFilesystem, tx, 'changed.txt', 'NEW');
    await put(fs as unknown as PosixRemoteFilesystem, tx, 'sub/deep/added.txt', 'ADDED');
    await fs.writeLink(tx, 'sub/latest', 'deep/added.txt');
    await fs.deleteFile(tx, 'gone.txt');
    // nothing is visible before the commit
    expect(await text(await fs.readFile('changed.txt'))).toBe('OLD');
    expect(existsSync(path.join(sb.root, 'sub'))).toBe(false);
    await put(fs as unknown as PosixRemoteFilesystem, tx, '.dsg/last-sync.json', manifest(2));
    await fs.commit(tx, {
      snapshotId: 's2',
      message: 'm2',
      manifestHash: 'h2',
      user: 'u@x',
      createdAt: '2026-01-02T00:00:00Z',
    });

    expect((await readdir(sb.root)).sort()).toEqual(['.dsg', 'README.md', 'changed.txt', 'empty', 'kept.txt', 'sub']);
    expect((await readdir(path.join(sb.root, '.dsg'))).sort()).toEqual(['last-sync.json', 'sync-messages.json']);
    expect(await text(await fs.readFile('changed.txt'))).toBe('NEW');
    expect(await text(await fs.readFile('sub/deep/added.txt'))).toBe('ADDED');
    expect(await text(await fs.readFile('gone.txt'))).toBe(null);
    expect(JSON.parse(await readFile(path.join(sb.root, '.dsg/last-sync.json'), 'utf8')).metadata.snapshot_id).toBe(
      's2',
    );
    const after = await tree(sb.root);
    expect(after.find((l) => l.startsWith('README.md'))).toBe(readme); // same inode, bytes, mtime
    expect(after).toContain('empty/dir dir');
    expect(after.find((l) => l.startsWith('sub/latest'))).toMatch(/-> deep\/added\.txt$/);
    expect((await fs.listSnapshots()).map((s) => s.snapshotId)).toEqual(['s2']);
    expect(await fs.exists()).toBe(true);
    // a repeated commit (reply lost) succeeds again
    await fs.commit(tx, {
      snapshotId: 's2',
      message: 'm2',
      manifestHash: 'h2',
      user: 'u@x',
      createdAt: '2026-01-02T00:00:00Z',
    });
  });

  it('lists the snapshots sync-messages.json names below the head, then the head', async () => {
    await writeFile(
      path.join(sb.root, '.dsg/sync-messages.json'),
      JSON.stringify({
        metadata_version: '0.4.4',
        snapshots: { s1: { snapshot_id: 's1', created_at: 'a', snapshot_message: 'first' }, s9: {} },
      }),
    );
    await writeFile(path.join(sb.root, '.dsg/last-sync.json'), manifest(2));
    const snaps = await fs.listSnapshots();
    expect(snaps.map((s) => [s.snapshotId, s.message])).toEqual([
      ['s1', 'first'],
      ['s2', 'm2'],
    ]);
    expect(snaps[1]).toMatchObject({ user: 'u@x', manifestHash: 'h2', createdAt: '2026-01-02T00:00:00-08:00' });
  });

  it('rollback leaves the tree exactly as it was', async () => {
    const before = await tree(sb.root);
    const tx = txId();
    await fs.begin(tx);
    await put(fs as unknown as PosixRemoteFilesystem, tx, 'changed.txt', 'NEW');
    await put(fs as unknown as PosixRemoteFilesystem, tx, 'x/y.txt', 'Y');
    await fs.deleteFile(tx, 'kept.txt');
    const report = await fs.rollback(tx);
    expect(report.leftovers).toEqual([]);
    expect(await tree(sb.root)).toEqual(before);
    expect(workAreas(sb.root)).toEqual([]);
  });

  it('a commit that fails half way is undone from its journal', async () => {
    const before = await tree(sb.root);
    const tx = txId();
    await fs.begin(tx);
    await put(fs as unknown as PosixRemoteFilesystem, tx, 'changed.txt', 'NEW');
    await put(fs as unknown as PosixRemoteFilesystem, tx, 'new/dir/a.txt', 'A');
    await fs.deleteFile(tx, 'gone.txt');
    await put(fs as unknown as PosixRemoteFilesystem, tx, '.dsg/last-sync.json', manifest(2));
    process.env['DSG_FAULT'] = 'flat.commit.before-switch:throw';
    await expect(
      fs.commit(tx, { snapshotId: 's2', message: 'm', manifestHash: 'h', user: 'u', createdAt: 'c' }),
    ).rejects.toBeInstanceOf(TransactionCommitError);
    delete process.env['DSG_FAULT'];
    await fs.rollback(tx);
    expect(await tree(sb.root)).toEqual(before);
  });

  it('refuses a commit that is not the next snapshot or stages no last-sync.json', async () => {
    const tx = txId();
    await fs.begin(tx);
    await put(fs as unknown as PosixRemoteFilesystem, tx, 'a.txt', 'A');
    const info = { snapshotId: 's2', message: 'm', manifestHash: 'h', user: 'u', createdAt: 'c' };
    await expect(fs.commit(tx, info)).rejects.toThrow(/wrote no \.dsg\/last-sync\.json/);
    await put(fs as unknown as PosixRemoteFilesystem, tx, '.dsg/last-sync.json', manifest(3));
    await expect(fs.commit(tx, info)).rejects.toThrow(/staged \.dsg\/last-sync\.json is s3/);
    await expect(fs.commit(tx, { ...info, snapshotId: 's3' })).rejects.toThrow(/not the next one/);
    await expect(fs.writeFile(tx, '.dsg/tx/x', streamOf('x'), { hash: hashOf('x') })).rejects.toBeInstanceOf(
      ValidationError,
    );
    await fs.rollback(tx);
  });

  it('init makes a flat repository from nothing; a rolled-back init leaves nothing', async () => {
    const root = path.join(sb.base, 'fresh');
    const f = new FlatRemoteFilesystem({ root, hasher: xxh3Hasher });
    expect(await f.exists()).toBe(false);
    const tx = txId();
    expect(await f.begin(tx)).toMatchObject({ pattern: 'init' });
    await f.rollback(tx);
    expect(existsSync(root)).toBe(false);
    await flatSync(f, 1, { 'input/a.csv': 'a' });
    expect(isFlatRepository(root)).toBe(true);
    expect((await readdir(root)).sort()).toEqual(['.dsg', 'input']);
  });

  it('old snapshots are not available, with a hint; the head is', async () => {
    await flatSync(fs, 2, { 'changed.txt': 'NEW' });
    expect(await text(await fs.readSnapshotFile('s2', 'changed.txt'))).toBe('NEW');
    const e = await fs.readSnapshotFile('s1', 'changed.txt').catch((x: unknown) => x);
    expect(e).toBeInstanceOf(NotFoundError);
    expect((e as NotFoundError).message).toMatch(/not available in a flat repository/);
    expect((e as NotFoundError).recoveryHint).toMatch(/keeps no old files/);
    await expect(fs.mountSnapshot('s2')).rejects.toBeInstanceOf(NotFoundError);
  });
});

describe('copyFile on a flat repository', () => {
  const P = (f: FlatRemoteFilesystem): PosixRemoteFilesystem => f as unknown as PosixRemoteFilesystem;
  const s2 = { snapshotId: 's2', message: 'm2', manifestHash: 'h2', user: 'u@x', createdAt: '2026-01-02T00:00:00Z' };

  /** A rename of kept.txt, a copy of changed.txt as this transaction staged it, a copy of a new file. */
  async function copies(tx: TransactionId): Promise<void> {
    await put(P(fs), tx, 'changed.txt', 'NEW');
    await put(P(fs), tx, 'sub/added.txt', 'ADDED');
    await fs.deleteFile(tx, 'gone.txt');
    await fs.copyFile(tx, 'kept.txt', 'moved/kept.txt', { hash: hashOf('K'), size: 1 });
    await fs.deleteFile(tx, 'kept.txt');
    // the staged file, not the tree's OLD
    await expect(fs.copyFile(tx, 'changed.txt', 'c2.txt', { hash: hashOf('OLD') })).rejects.toMatchObject({
      code: 'HASH_MISMATCH',
    });
    await fs.copyFile(tx, 'changed.txt', 'c2.txt', { hash: hashOf('NEW') });
    await fs.copyFile(tx, 'sub/added.txt', 'sub/twin.txt', { hash: hashOf('ADDED') });
    // deleted in this transaction, though still in the tree; and the work area is no source
    await expect(fs.copyFile(tx, 'gone.txt', 'g.txt', { hash: hashOf('G') })).rejects.toBeInstanceOf(NotFoundError);
    await expect(fs.copyFile(tx, 'kept.txt', 'k.txt', { hash: hashOf('K') })).rejects.toBeInstanceOf(NotFoundError);
    await expect(
      fs.copyFile(tx, `.dsg/tx/${tx}/new/changed.txt`, 'x.txt', { hash: hashOf('NEW') }),
    ).rejects.toBeInstanceOf(ValidationError);
    await expect(fs.copyFile(tx, 'kept.txt', '.dsg/tx/x', { hash: hashOf('K') })).rejects.toBeInstanceOf(
      ValidationError,
    );
    await put(P(fs), tx, '.dsg/last-sync.json', manifest(2));
  }

  it('copies what this transaction sees (staged, deleted, or the tree), and commits them in place', async () => {
    const tx = txId();
    await fs.begin(tx);
    const before = await tree(sb.root);
    await copies(tx);
    expect(await tree(sb.root)).toEqual(before); // nothing visible before the commit
    await fs.commit(tx, s2);
    const files: Record<string, string | null> = {
      'moved/kept.txt': 'K',
      'kept.txt': null,
      'changed.txt': 'NEW',
      'c2.txt': 'NEW',
      'sub/added.txt': 'ADDED',
      'sub/twin.txt': 'ADDED',
      'gone.txt': null,
      'README.md': 'not data',
    };
    for (const [p, c] of Object.entries(files)) expect(await text(await fs.readFile(p)), p).toBe(c);
    expect(existsSync(path.join(sb.root, '.dsg/tx'))).toBe(false);
  });

  it('a rollback, or a commit that fails half way then recover(), leaves the tree as it was', async () => {
    const before = await tree(sb.root);
    const tx = txId();
    await fs.begin(tx);
    await copies(tx);
    expect((await fs.rollback(tx)).leftovers).toEqual([]);
    expect(await tree(sb.root)).toEqual(before);

    const tx2 = txId();
    await fs.begin(tx2);
    await copies(tx2);
    process.env['DSG_FAULT'] = 'flat.commit.before-switch:throw';
    await expect(fs.commit(tx2, s2)).rejects.toBeInstanceOf(TransactionCommitError);
    delete process.env['DSG_FAULT'];
    // a new agent finds the work area: recover() undoes it from the journal
    const report = await new FlatRemoteFilesystem({ root: sb.root, hasher: xxh3Hasher }).recover();
    expect(report.transactions).toEqual([{ transactionId: tx2, action: 'rolled-back' }]);
    expect(report.leftovers).toEqual([]);
    expect(await tree(sb.root)).toEqual(before);
    expect(workAreas(sb.root)).toEqual([]);
  });
});

describe('links are data, never followed', () => {
  it('a file beneath a link in the tree or in the transaction is refused; a link at the name is replaced', async () => {
    const outside = path.join(sb.base, 'outside');
    await mkdir(outside);
    await writeFile(path.join(outside, 'victim.txt'), 'SAFE');
    await symlink('../outside', path.join(sb.root, 'escape'));
    await symlink('../outside/victim.txt', path.join(sb.root, 'trap.txt'));
    const tx = txId();
    await fs.begin(tx);
    await expect(put(fs as unknown as PosixRemoteFilesystem, tx, 'escape/victim.txt', 'PWNED')).rejects.toBeInstanceOf(
      ValidationError,
    );
    await fs.writeLink(tx, 'l', 'kept.txt');
    await expect(put(fs as unknown as PosixRemoteFilesystem, tx, 'l/x', 'X')).rejects.toBeInstanceOf(ValidationError);
    await expect(fs.writeLink(tx, 'up', '../outside')).rejects.toBeInstanceOf(ValidationError);
    await expect(fs.writeLink(tx, 'via', 'escape/victim.txt')).rejects.toBeInstanceOf(ValidationError);
    await expect(fs.writeLink(tx, 'current', 'kept.txt')).rejects.toThrow(/named current/);
    await put(fs as unknown as PosixRemoteFilesystem, tx, 'trap.txt', 'REPLACED');
    await put(fs as unknown as PosixRemoteFilesystem, tx, '.dsg/last-sync.json', manifest(2));
    await fs.commit(tx, { snapshotId: 's2', message: 'm', manifestHash: 'h', user: 'u', createdAt: 'c' });
    expect(await readFile(path.join(outside, 'victim.txt'), 'utf8')).toBe('SAFE');
    expect(await text(await fs.readFile('trap.txt'))).toBe('REPLACED');
    await expect(fs.readFile('escape/victim.txt')).rejects.toBeInstanceOf(ValidationError);
    await expect(fs.readFile('l')).rejects.toBeInstanceOf(ValidationError);
  });

  it('a link planted in the tree after the upload is refused at commit, and the tree is restored', async () => {
    const outside = path.join(sb.base, 'outside');
    await mkdir(outside);
    const before = await tree(sb.root);
    const tx = txId();
    await fs.begin(tx);
    await put(fs as unknown as PosixRemoteFilesystem, tx, 'changed.txt', 'NEW');
    await put(fs as unknown as PosixRemoteFilesystem, tx, 'd/x.txt', 'X');
    await put(fs as unknown as PosixRemoteFilesystem, tx, '.dsg/last-sync.json', manifest(2));
    await symlink('../outside', path.join(sb.root, 'd'));
    await expect(
      fs.commit(tx, { snapshotId: 's2', message: 'm', manifestHash: 'h', user: 'u', createdAt: 'c' }),
    ).rejects.toBeInstanceOf(TransactionCommitError);
    expect(await readdir(outside)).toEqual([]);
    await fs.rollback(tx);
    expect((await tree(sb.root)).filter((l) => !l.startsWith('d '))).toEqual(before);
  });
});

describe('writeLink racing writeFile beneath it', () => {
  it('never lands a file through a link, whichever wins, in staging or in the tree after commit', async () => {
    await mkdir(path.join(sb.root, 'sub'));
    for (let i = 0; i < 40; i++) {
      const tx = txId();
      await fs.begin(tx);
      const p = `p${i}`;
      const results = await Promise.allSettled([
        put(fs as unknown as PosixRemoteFilesystem, tx, `${p}/x.txt`, 'X'),
        fs.writeLink(tx, p, 'sub'),
        put(fs as unknown as PosixRemoteFilesystem, tx, `${p}/y.txt`, 'Y'),
      ]);
      expect(results.filter((r) => r.status === 'fulfilled').length).toBeGreaterThan(0);
      await put(fs as unknown as PosixRemoteFilesystem, tx, '.dsg/last-sync.json', manifest(i + 2));
      await fs.commit(tx, { snapshotId: `s${i + 2}`, message: 'm', manifestHash: 'h', user: 'u', createdAt: 'c' });
      const st = lstatSyncSafe(path.join(sb.root, p));
      if (st?.isSymbolicLink()) expect(results[0].status).toBe('rejected');
      expect(await readdir(path.join(sb.root, 'sub'))).toEqual([]);
    }
  });
});

describe('crash during a sync of a flat repository, then recover()', () => {
  beforeAll(() => {
    if (!existsSync(path.join(here, '..', 'dist', 'index.js'))) throw new Error('dist/ is missing: build first');
  });
  const POINTS: [string, 'old' | 'new'][] = [
    ['flat.begin.start', 'old'],
    ['flat.begin.after-mkdir', 'old'],
    ['flat.commit.start', 'old'],
    ['flat.commit.after-journal', 'old'],
    ['flat.commit.after-apply', 'old'],
    ['flat.commit.before-switch', 'old'],
    ['flat.commit.after-switch', 'new'],
  ];
  it.each(POINTS)('killed at %s → the tree is the %s one, no leftovers', async (point, ends) => {
    const before = await tree(sb.root);
    const tx = txId();
    const r = spawnSync(process.execPath, [fixture, sb.root, tx, 's2', 'NEW'], {
      env: { ...process.env, DSG_FAULT: point },
      encoding: 'utf8',
    });
    expect({ signal: r.signal, stderr: r.stderr }).toEqual({ signal: 'SIGKILL', stderr: '' });
    const f = new FlatRemoteFilesystem({ root: sb.root, hasher: xxh3Hasher });
    const report = await f.recover();
    expect(report.leftovers).toEqual([]);
    if (point !== 'flat.begin.start') {
      expect(report.transactions).toEqual([
        { transactionId: tx, action: ends === 'old' ? 'rolled-back' : 'rolled-forward' },
      ]);
    }
    expect(workAreas(sb.root)).toEqual([]);
    expect(existsSync(path.join(sb.root, 'current'))).toBe(false);
    if (ends === 'old') expect(await tree(sb.root)).toEqual(before);
    expect((await f.listSnapshots()).at(-1)?.snapshotId).toBe(ends === 'old' ? 's1' : 's2');
    expect(await text(await f.readFile('changed.txt'))).toBe(ends === 'old' ? 'OLD' : 'NEW');
    expect(await text(await f.readFile('gone.txt'))).toBe(ends === 'old' ? 'G' : null);
    expect(await text(await f.readFile('sub/added.txt'))).toBe(ends === 'old' ? null : 'NEW');
    expect(await text(await f.readFile('README.md'))).toBe('not data');
    // and the next sync works
    await flatSync(f, ends === 'old' ? 2 : 3, { 'kept.txt': 'K2' });
  });
});

function lstatSyncSafe(p: string): Stats | null {
  try {
    return lstatSync(p);
  } catch {
    return null;
  }
}
