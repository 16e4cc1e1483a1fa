// posixHost: the one place that maps the posix and xfs repository types to a
// backend, a lock file and a listing (RepositoryHost of @dsg/contracts).
import { mkdir, readdir } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError, ValidationError } from '@dsg/contracts';
import { FlatRemoteFilesystem, PosixRemoteFilesystem, posixHost, type PosixHost } from '../src/index.js';
import { put, sandbox, sync, text, txId, xxh3Hasher, type Sandbox } from './helpers.js';

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

/** One commit of a flat repository: its files plus the head in .dsg/last-sync.json. */
async function flatCommit(fs: FlatRemoteFilesystem, n: number, files: Record<string, string>): Promise<void> {
  const tx = txId();
  await fs.begin(tx);
  for (const [p, c] of Object.entries({ ...files, '.dsg/last-sync.json': manifest(n) }))
    await put(fs as unknown as PosixRemoteFilesystem, tx, p, c);
  await fs.commit(tx, {
    snapshotId: `s${n}`,
    message: `m${n}`,
    manifestHash: `h${n}`,
    user: 'u@x',
    createdAt: '2026-01-01T00:00:00Z',
  });
}

let sb: Sandbox;
let root: string;
beforeEach(async () => {
  sb = await sandbox();
  root = path.join(sb.base, 'repos');
  await mkdir(root);
});
afterEach(() => sb.cleanup());

describe('posixHost: the snapshot layout (type posix)', () => {
  it('opens <root>/<name>, locks <root>/<name>/lock, lists committed repositories only', async () => {
    const host: PosixHost = posixHost({ root, hasher: xxh3Hasher });
    expect(host.root).toBe(root);
    expect(await host.list()).toEqual([]);
    const fs = host.open('proj');
    expect(fs).toBeInstanceOf(PosixRemoteFilesystem);
    expect(host.lockFile('proj')).toBe(path.join(root, 'proj', 'lock'));
    await sync(fs as PosixRemoteFilesystem, 1, { 'input/a.csv': 'A' });
    expect(await readdir(path.join(root, 'proj'))).toContain('current');
    expect(await text(await host.open('proj').readFile('input/a.csv'))).toBe('A');
    // an init that never committed is no repository yet
    await (host.open('half') as PosixRemoteFilesystem).begin(txId());
    expect(await host.list()).toEqual(['proj']);
    expect(host.lockFile('proj')).toBe(path.join(root, 'proj', 'lock'));
  });

  it('an existing flat repository opens as one, with its lock beside it, even without preferFlat', async () => {
    await flatCommit(posixHost({ root, hasher: xxh3Hasher, preferFlat: true }).open('old') as FlatRemoteFilesystem, 1, {
      'a.txt': 'A',
    });
    const host = posixHost({ root, hasher: xxh3Hasher });
    expect(host.open('old')).toBeInstanceOf(FlatRemoteFilesystem);
    expect(host.lockFile('old')).toBe(path.join(root, '.old.dsg-lock'));
    expect(await host.list()).toEqual(['old']);
  });

  it('a relative root or a name that is not one plain component is refused before any disk access', async () => {
    expect(() => posixHost({ root: 'repos', hasher: xxh3Hasher })).toThrow(ConfigError);
    const host = posixHost({ root, hasher: xxh3Hasher });
    for (const bad of ['', '.', '..', '../x', 'a/b', '/abs', '.hidden', 'a..b', 'x\0y']) {
      expect(() => host.open(bad), bad).toThrow(ValidationError);
      expect(() => host.lockFile(bad), bad).toThrow(ValidationError);
    }
    expect(await readdir(root)).toEqual([]);
  });
});

describe('posixHost: the original dsg flat layout (type xfs: preferFlat)', () => {
  it('a new repository is made flat; its lock is <root>/.<name>.dsg-lock; listed after its first commit', async () => {
    const host = posixHost({ root, hasher: xxh3Hasher, preferFlat: true });
    const fs = host.open('flat');
    expect(fs).toBeInstanceOf(FlatRemoteFilesystem);
    expect(host.lockFile('flat')).toBe(path.join(root, '.flat.dsg-lock'));
    await flatCommit(fs as FlatRemoteFilesystem, 1, { 'data/a.txt': 'A' });
    expect(await text(await host.open('flat').readFile('data/a.txt'))).toBe('A');
    expect(await host.list()).toEqual(['flat']);
    expect(host.lockFile('flat')).toBe(path.join(root, '.flat.dsg-lock'));
  });

  it('an existing snapshot repository stays one (open and lock file) whatever the type prefers', async () => {
    await sync(posixHost({ root, hasher: xxh3Hasher }).open('snap') as PosixRemoteFilesystem, 1, { 'a.txt': 'A' });
    const host = posixHost({ root, hasher: xxh3Hasher, preferFlat: true });
    expect(host.open('snap')).toBeInstanceOf(PosixRemoteFilesystem);
    expect(host.lockFile('snap')).toBe(path.join(root, 'snap', 'lock'));
    await flatCommit(host.open('flat') as FlatRemoteFilesystem, 1, { 'b.txt': 'B' });
    expect(await host.list()).toEqual(['flat', 'snap']);
  });
});
