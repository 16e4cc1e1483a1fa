import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir, readlink, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { TransactionCommitError } from '@dsg/contracts';
import { listPosixRepositories, PosixRemoteFilesystem } from '../src/index.js';
import { listing, sandbox, sync, text, txId, xxh3Hasher, type Sandbox } from './helpers.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const fixture = path.join(here, 'fixtures', 'crash-sync.mjs');

/** Every fault point of begin and commit, in order, and where the repository must end up. */
const POINTS: [point: string, ends: 'old' | 'new'][] = [
  ['posix.begin.start', 'old'],
  ['posix.begin.after-mkdir', 'old'],
  ['posix.begin.after-clone', 'old'],
  ['posix.commit.start', 'old'],
  ['posix.commit.after-seal', 'old'],
  ['posix.commit.after-metadata', 'old'],
  ['posix.commit.after-rename', 'old'],
  ['posix.commit.after-temp-link', 'old'],
  ['posix.commit.after-switch', 'new'],
];

function crashChild(root: string, tx: string, snapshotId: string, point: string): void {
  const r = spawnSync(process.execPath, [fixture, root, tx, snapshotId, 'NEW'], {
    env: { ...process.env, DSG_FAULT: point },
    encoding: 'utf8',
  });
  // Killed by the fault point, not finished and not failed some other way.
  expect({ signal: r.signal, stderr: r.stderr }).toEqual({ signal: 'SIGKILL', stderr: '' });
}

beforeAll(() => {
  if (!existsSync(path.join(here, '..', 'dist', 'index.js'))) {
    throw new Error('dist/ is missing: build first (pnpm turbo run build --filter @dsg/posix-ops)');
  }
});

let sb: Sandbox;
beforeEach(async () => {
  sb = await sandbox();
});
afterEach(async () => {
  delete process.env['DSG_FAULT'];
  await sb.cleanup();
});

describe('crash during a sync, then recover()', () => {
  it.each(POINTS)('killed at %s → current is the %s snapshot, no leftovers', async (point, ends) => {
    const { root } = sb;
    await sync(sb.fs, 1, { 'changed.txt': 'OLD', 'kept.txt': 'K', 'gone.txt': 'G' });
    const s1Before = await listing(path.join(root, 'snapshots/s1'));
    const tx = txId();
    crashChild(root, tx, 's2', point);

    const fs = new PosixRemoteFilesystem({ root, hasher: xxh3Hasher });
    const report = await fs.recover();
    expect(report.leftovers).toEqual([]);
    if (point !== 'posix.begin.start' && ends === 'old') {
      expect(report.transactions).toEqual([{ transactionId: tx, action: 'rolled-back' }]);
    }

    // current exists and resolves to a real snapshot directory
    const target = await readlink(path.join(root, 'current'));
    expect(target).toBe(ends === 'old' ? 'snapshots/s1' : 'snapshots/s2');
    expect((await stat(path.join(root, 'current'))).isDirectory()).toBe(true);
    // the uploads of the interrupted commit may stay parked (see the parked tests): they are no snapshot
    expect((await readdir(root)).filter((n) => n !== 'parked').sort()).toEqual(['current', 'snapshots']);
    expect((await readdir(path.join(root, 'snapshots'))).sort()).toEqual(
      ends === 'old' ? ['s1', 's1.json'] : ['s1', 's1.json', 's2', 's2.json'],
    );
    expect(await text(await fs.readFile('changed.txt'))).toBe(ends === 'old' ? 'OLD' : 'NEW');
    expect(await text(await fs.readFile('gone.txt'))).toBe(ends === 'old' ? 'G' : null);
    expect(await text(await fs.readFile('sub/added.txt'))).toBe(ends === 'old' ? null : 'NEW');
    // the old snapshot is byte-identical, down to its link counts once the work area is gone
    const s1After = await listing(path.join(root, 'snapshots/s1'));
    if (ends === 'old') expect(s1After).toEqual(s1Before);
    expect(s1After.map((l) => l.replace(/ nlink=\d+/, ''))).toEqual(s1Before.map((l) => l.replace(/ nlink=\d+/, '')));
    expect((await fs.listSnapshots()).map((s) => s.snapshotId)).toEqual(ends === 'old' ? ['s1'] : ['s1', 's2']);

    // and the repository keeps working
    await sync(fs, ends === 'old' ? 2 : 3, { 'after.txt': 'A' });
    expect(await text(await fs.readFile('after.txt'))).toBe('A');
  });
});

describe('crash during an init, then recover()', () => {
  it.each([
    ['posix.commit.after-rename', false],
    ['posix.commit.after-temp-link', false],
    ['posix.commit.after-switch', true],
  ] as const)('killed at %s → repository exists: %s', async (point, exists) => {
    const { root, base } = sb;
    crashChild(root, txId(), 's1', point);
    const fs = new PosixRemoteFilesystem({ root, hasher: xxh3Hasher });
    // before recover, a commit that never switched is not history
    expect((await fs.listSnapshots()).length).toBe(exists ? 1 : 0);
    expect((await fs.recover()).leftovers).toEqual([]);
    expect(await fs.exists()).toBe(exists);
    expect(await listPosixRepositories(base)).toEqual(exists ? ['repo'] : []);
    expect((await readdir(path.join(root, 'snapshots'))).sort()).toEqual(exists ? ['s1', 's1.json'] : []);
    if (exists) expect(await text(await fs.readFile('changed.txt'))).toBe('NEW');
  });
});

describe('a commit that fails (no crash) puts the work area back', () => {
  it.each(['posix.commit.after-seal', 'posix.commit.after-rename', 'posix.commit.after-temp-link'])(
    'throw at %s → TransactionCommitError, repository unchanged, the same commit then succeeds',
    async (point) => {
      const { fs, root } = sb;
      await sync(fs, 1, { 'a.txt': 'A' });
      const s1Before = await listing(path.join(root, 'snapshots/s1'));
      const tx = txId();
      await fs.begin(tx);
      await fs.deleteFile(tx, 'a.txt');
      const info = { snapshotId: 's2', message: 'm', manifestHash: 'h', user: 'u', createdAt: '2026-01-02T00:00:00Z' };
      process.env['DSG_FAULT'] = `${point}:throw`;
      await expect(fs.commit(tx, info)).rejects.toBeInstanceOf(TransactionCommitError);
      delete process.env['DSG_FAULT'];
      expect(await readlink(path.join(root, 'current'))).toBe('snapshots/s1');
      expect((await readdir(path.join(root, 'snapshots'))).sort()).toEqual(['s1', 's1.json']);
      expect((await fs.listSnapshots()).map((s) => s.snapshotId)).toEqual(['s1']);
      await fs.commit(tx, info);
      expect(await text(await fs.readFile('a.txt'))).toBeNull();
      expect(await text(await fs.readSnapshotFile('s1', 'a.txt'))).toBe('A');
      expect((await listing(path.join(root, 'snapshots/s1'))).map((l) => l.replace(/ nlink=\d+/, ''))).toEqual(
        s1Before.map((l) => l.replace(/ nlink=\d+/, '')),
      );
    },
  );
});
