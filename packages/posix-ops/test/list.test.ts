import { mkdir, readdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  listPosixRepositories,
  posixHost,
  posixRepositorySummaries,
  PosixRemoteFilesystem,
  replicatePosixRepository,
} from '../src/index.js';
import { put, sandbox, sync, txId, xxh3Hasher, type Sandbox } from './helpers.js';

let sb: Sandbox;
beforeEach(async () => {
  sb = await sandbox('alpha');
});
afterEach(async () => {
  await sb.cleanup();
});

const open = (name: string): PosixRemoteFilesystem =>
  new PosixRemoteFilesystem({ root: path.join(sb.base, name), hasher: xxh3Hasher });

describe('listPosixRepositories', () => {
  it('lists directories with a live current link and ignores leftovers', async () => {
    await sync(sb.fs, 1, { a: 'A' });
    await sync(open('beta'), 1, { b: 'B' });
    // an init that never committed
    const tx = txId();
    await open('gamma').begin(tx);
    await put(open('gamma'), tx, 'g', 'G');
    // a dangling current, a hidden dir, a plain file, a link to a repository
    await mkdir(path.join(sb.base, 'delta'));
    await symlink('snapshots/s1', path.join(sb.base, 'delta', 'current'));
    await mkdir(path.join(sb.base, '.hidden'));
    await writeFile(path.join(sb.base, 'file'), 'x');
    await symlink('alpha', path.join(sb.base, 'alias'));
    expect(await listPosixRepositories(sb.base)).toEqual(['alpha', 'beta']);
    expect(await listPosixRepositories(path.join(sb.base, 'missing'))).toEqual([]);
  });

  it('lists only names the agent would open (one repository-name rule): a 101-character name is left out', async () => {
    await sync(sb.fs, 1, { a: 'A' });
    await sync(open('r'.repeat(101)), 1, { b: 'B' });
    await sync(open('r'.repeat(100)), 1, { c: 'C' });
    expect(await listPosixRepositories(sb.base)).toEqual(['alpha', 'r'.repeat(100)]);
  });
});

describe('posixRepositorySummaries (list-repos details)', () => {
  it("each repository's head and replica marker: a primary, its replica made by the real engine, an empty one", async () => {
    await sync(sb.fs, 1, { a: 'A' });
    await sync(sb.fs, 2, { a: 'A2' });
    await sync(open('beta'), 1, { b: 'B' });
    const replicas = path.join(sb.base, 'replicas');
    await mkdir(replicas);
    await replicatePosixRepository({ source: sb.root, target: { parent: replicas }, primary: `prim:${sb.root}` });
    expect(await posixRepositorySummaries(replicas)).toEqual([
      { name: 'alpha', head: 's2', replicaOf: `prim:${sb.root}` },
    ]);
    // `replicas` itself is no repository; the primaries are not replicas
    expect(await posixHost({ root: sb.base, hasher: xxh3Hasher }).summaries!()).toEqual([
      { name: 'alpha', head: 's2', replicaOf: null },
      { name: 'beta', head: 's1', replicaOf: null },
    ]);
    expect(await posixRepositorySummaries(path.join(sb.base, 'missing'))).toEqual([]);
  });
});

describe('the lock file', () => {
  it('is never touched by transactions or recovery', async () => {
    await sync(sb.fs, 1, { a: 'A' });
    await writeFile(path.join(sb.root, 'lock'), 'held');
    const tx = txId();
    await sb.fs.begin(tx);
    await sb.fs.rollback(tx);
    await sync(sb.fs, 2, { a: 'A2' });
    await sb.fs.recover();
    expect((await readdir(sb.root)).sort()).toEqual(['current', 'lock', 'snapshots']);
  });
});
