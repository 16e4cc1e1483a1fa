import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { NotFoundError, TransactionCommitError, type SnapshotInfo } from '@dsg/contracts';
import {
  buildSnapshot,
  compressArchive,
  createXxh3Hasher,
  hashBytes,
  serializeManifest,
  serializeSyncMessages,
  SYNC_MESSAGES_VERSION,
  type Manifest,
  type ManifestEntry,
} from '@dsg/manifest';
import { freshParent, listAll, requireZfs, zfsRetry, type TestParent } from '@dsg/testenv';
import { HEAD_RACY_MS } from '../src/layout.js';
import { Zfs, ZfsOperations, ZfsRemoteFilesystem } from '../src/index.js';
import { runChild } from './crash.js';
import { bytes, info, readAll, tx } from './helpers.js';

const env = requireZfs();

const USER = 'ana@example.org';
const A1 = 'id,name\n1,Ana\n';
const A3 = 'id,name\n1,Ana\n2,Bo\n3,Cy\n';
const B = 'id,total\n1,10\n';
const C = 'new\n';
const NO_ZFS_S2 =
  'snapshot s2 has no ZFS snapshot in this repository (made by HRDAG/dsg, which snapshots only at init)';

const file = (p: string, content: string, mtime = '2024-01-15T09:00:00-08:00'): ManifestEntry => ({
  type: 'file',
  path: p,
  user: USER,
  filesize: Buffer.byteLength(content),
  mtime,
  hash: hashBytes(content),
});

/** The original's snapshot chain: s1 "Initial snapshot", s2 "Init operation" (init), s3 "Sync operation". */
function chain(): { s1: Manifest; s2: Manifest; s3: Manifest } {
  const at = (s: string): Date => new Date(s);
  const init = [file('input/a.csv', A1), file('output/b.csv', B)];
  const s1 = buildSnapshot(init, {
    snapshotId: 's1',
    previous: null,
    message: 'Initial snapshot',
    user: USER,
    createdAt: at('2026-12-01T13:34:10Z'),
    projectConfig: null,
    notes: 'init',
  });
  const s2 = buildSnapshot(init, {
    snapshotId: 's2',
    previous: s1.metadata,
    message: 'Init operation',
    user: USER,
    createdAt: at('2026-12-01T13:34:10Z'),
    projectConfig: null,
    notes: 'init',
  });
  const s3 = buildSnapshot([file('input/a.csv', A3, '2024-02-01T10:00:00-08:00'), file('output/b.csv', B)], {
    snapshotId: 's3',
    previous: s2.metadata,
    message: 'Sync operation',
    user: USER,
    createdAt: at('2026-12-01T13:34:16Z'),
    projectConfig: null,
    notes: 'sync',
  });
  return { s1, s2, s3 };
}

function messages(...ms: Manifest[]): string {
  return serializeSyncMessages({
    metadata_version: SYNC_MESSAGES_VERSION,
    snapshots: Object.fromEntries(ms.map((m) => [m.metadata!.snapshot_id, m.metadata!])),
  });
}

function put(dir: string, rel: string, content: string | Uint8Array): void {
  mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
  writeFileSync(path.join(dir, rel), content);
}

/** Every file under dir with a hash of its bytes: "the tree did not change" in one comparison. */
function tree(dir: string): string[] {
  return (
    readdirSync(dir, { recursive: true, withFileTypes: true }) as {
      name: string;
      parentPath: string;
      isFile(): boolean;
    }[]
  )
    .filter((e) => e.isFile())
    .map((e) => {
      const rel = path.relative(dir, path.join(e.parentPath, e.name));
      return `${rel} ${createHash('sha256')
        .update(readFileSync(path.join(dir, rel)))
        .digest('hex')
        .slice(0, 12)}`;
    })
    .sort();
}

const zfsGet = (ds: string, prop: string): string =>
  execFileSync('zfs', ['get', '-H', '-o', 'value,source', prop, ds], { encoding: 'utf8' }).trim();

describe.skipIf(!env)('repositories of HRDAG/dsg on ZFS (legacy layout), on the real pool', () => {
  const parents: TestParent[] = [];
  const dirs: string[] = [];
  afterEach(() => {
    while (parents.length) parents.pop()!.destroy();
    while (dirs.length) rmSync(dirs.pop()!, { recursive: true, force: true });
  });

  /**
   * What the original leaves: dataset P/<name> with its own mountpoint (not
   * below P's, and not where the config below assumes), the tree at its
   * root with .dsg/last-sync.json (head s3) and a sync-messages.json one
   * behind, and one ZFS snapshot @s1 taken at init.
   */
  function legacy(name = 'proj'): {
    p: TestParent;
    ds: string;
    dir: string;
    fs: ZfsRemoteFilesystem;
    configured: string;
    m: ReturnType<typeof chain>;
  } {
    const p = freshParent(env!, 'zleg');
    parents.push(p);
    const base = mkdtempSync(path.join(os.tmpdir(), 'dsg-legacy-mnt-'));
    dirs.push(base);
    const dir = path.join(base, name);
    const ds = `${p.dataset}/${name}`;
    execFileSync('zfs', ['create', '-o', `mountpoint=${dir}`, ds]);
    const m = chain();
    // dsg init of the original: the files, .dsg/, then `zfs snapshot <ds>@s1`
    put(dir, 'input/a.csv', A1);
    put(dir, 'output/b.csv', B);
    put(dir, 'README.md', '# not data\n');
    put(dir, '.dsg/last-sync.json', serializeManifest(m.s2));
    put(dir, '.dsg/sync-messages.json', messages(m.s1));
    execFileSync('zfs', ['snapshot', `${ds}@s1`]);
    // dsg sync of the original: in place, no snapshot
    put(dir, 'input/a.csv', A3);
    put(dir, '.dsg/last-sync.json', serializeManifest(m.s3));
    put(dir, '.dsg/sync-messages.json', messages(m.s1, m.s2));
    const configured = path.join(base, 'not-where-the-pool-mounts-it');
    const fs = new ZfsRemoteFilesystem({
      parent: p.dataset,
      repo: name,
      mountpoint: configured,
      hasher: createXxh3Hasher,
    });
    return { p, ds, dir, fs, configured, m };
  }

  const upload = (fs: ZfsRemoteFilesystem, t: ReturnType<typeof tx>, rel: string, content: string | Uint8Array) =>
    fs.writeFile(t, rel, bytes(content), { hash: hashBytes(content), size: Buffer.byteLength(content) });

  /** The next manifest on top of s3 (as the coordinator builds it) and the SnapshotInfo of its commit. */
  function s4Of(m: ReturnType<typeof chain>, entries: ManifestEntry[]): { s4: Manifest; info: SnapshotInfo } {
    const s4 = buildSnapshot(entries, {
      snapshotId: 's4',
      previous: m.s3.metadata,
      message: 'new extract',
      user: USER,
      createdAt: new Date('2026-12-02T10:00:00Z'),
      projectConfig: null,
      notes: 'sync',
    });
    const md = s4.metadata!;
    return {
      s4,
      info: {
        snapshotId: 's4',
        message: md.snapshot_message ?? '',
        manifestHash: md.snapshot_hash!,
        user: USER,
        createdAt: md.created_at,
      },
    };
  }

  /** The metadata files a sync writes into the transaction, like the coordinator. */
  async function writeMeta(
    fs: ZfsRemoteFilesystem,
    t: ReturnType<typeof tx>,
    m: ReturnType<typeof chain>,
    s4: Manifest,
  ): Promise<void> {
    await upload(fs, t, '.dsg/last-sync.json', serializeManifest(s4));
    await upload(fs, t, '.dsg/sync-messages.json', messages(m.s1, m.s2, m.s3, s4));
    await upload(fs, t, '.dsg/archive/s3-sync.json.lz4', compressArchive(serializeManifest(m.s3)));
  }

  it('opens it with no extra config: head s3 from last-sync.json, history, files, and a clear error for a snapshot without ZFS snapshot', async () => {
    const { p, dir, fs, configured, m } = legacy();
    expect(await fs.repositoryLayout()).toBe('legacy');
    expect(await fs.exists()).toBe(true);
    const snaps = await fs.listSnapshots();
    expect(snaps.map((s) => s.snapshotId)).toEqual(['s1', 's2', 's3']); // not "the highest @sN" (s1)
    expect(snaps[2]).toEqual({
      snapshotId: 's3',
      createdAt: m.s3.metadata!.created_at,
      message: 'Sync operation',
      manifestHash: m.s3.metadata!.snapshot_hash,
      user: USER,
    });
    expect(snaps[1]).toMatchObject({
      snapshotId: 's2',
      message: 'Init operation',
      manifestHash: m.s2.metadata!.snapshot_hash,
    });

    // the live tree, found where ZFS mounted it
    expect(await readAll(await fs.readFile('input/a.csv'))).toBe(A3);
    expect(await readAll(await fs.readFile('README.md'))).toBe('# not data\n');
    expect(JSON.parse((await readAll(await fs.readFile('.dsg/last-sync.json')))!)).toMatchObject({
      metadata: { snapshot_id: 's3' },
    });
    expect(await fs.readFile('input/missing.csv')).toBeNull();

    // history: the head is the live tree, @s1 is there, s2 has no ZFS snapshot
    expect(await readAll(await fs.readSnapshotFile('s3', 'input/a.csv'))).toBe(A3);
    expect(await readAll(await fs.readSnapshotFile('s1', 'input/a.csv'))).toBe(A1);
    const e = await fs.readSnapshotFile('s2', 'input/a.csv').catch((x: unknown) => x);
    expect(e).toBeInstanceOf(NotFoundError);
    expect((e as NotFoundError).message).toBe(NO_ZFS_S2);
    expect((e as NotFoundError).code).toBe('NOT_FOUND');
    await expect(fs.readSnapshotFile('s9', 'input/a.csv')).rejects.toThrow(/snapshot s9 of proj does not exist/);
    await expect(fs.mountSnapshot('s2')).rejects.toThrow(NO_ZFS_S2);
    await expect(fs.mountSnapshot('s3')).rejects.toThrow(
      new RegExp(`snapshot s3 has no ZFS snapshot .*the live tree, mounted at ${dir}`),
    );
    const view = await fs.mountSnapshot('s1');
    expect(readFileSync(path.join(view, 'input/a.csv'), 'utf8')).toBe(A1);
    await fs.unmountSnapshot(view);
    await expect.poll(() => listAll(p.dataset).join('\n'), { timeout: 120_000 }).not.toMatch(/-view-/);
    // nothing was looked for (or made) where the config assumed the pool
    expect(existsSync(configured)).toBe(false);
  });

  it("a sync commits s4 atomically and the dataset stays the original's: P/<name>, its own mountpoint, the tree at its root, last-sync.json = s4", async () => {
    const { p, ds, dir, fs, m } = legacy();
    const t = tx();
    const b = await fs.begin(t);
    expect(b.pattern).toBe('sync');
    // the clone inherits P's mountpoint, as ZFS reports it (not the configured path)
    expect(b.workPath).toBe(path.join(p.mountpoint, `proj-sync-${t}`));
    expect(readFileSync(path.join(b.workPath, 'input/a.csv'), 'utf8')).toBe(A3);
    await upload(fs, t, 'input/c.csv', C);
    await fs.deleteFile(t, 'output/b.csv');
    const { s4, info } = s4Of(m, [file('input/a.csv', A3, '2024-02-01T10:00:00-08:00'), file('input/c.csv', C)]);
    await writeMeta(fs, t, m, s4);
    // nothing visible in the live tree before the commit
    expect(JSON.parse(readFileSync(path.join(dir, '.dsg/last-sync.json'), 'utf8'))).toMatchObject({
      metadata: { snapshot_id: 's3' },
    });
    expect(existsSync(path.join(dir, 'input/c.csv'))).toBe(false);
    await fs.commit(t, info);

    // ZFS: the same dataset name, mounted at its own mountpoint again, @s1 kept, @s4 added, nothing else
    expect(listAll(p.dataset).map((l) => l.split(p.dataset).join('P'))).toEqual([
      'P',
      'P/proj',
      'P/proj@s1',
      'P/proj@s4',
    ]);
    expect(zfsGet(ds, 'mountpoint')).toBe(`${dir}\tlocal`);
    expect(zfsGet(ds, 'mounted')).toBe('yes\t-');
    // the tree at the root, as the original reads it: straight from disk
    expect(JSON.parse(readFileSync(path.join(dir, '.dsg/last-sync.json'), 'utf8'))).toMatchObject({
      metadata: { snapshot_id: 's4', snapshot_previous: 's3' },
    });
    expect(
      Object.keys(
        (JSON.parse(readFileSync(path.join(dir, '.dsg/sync-messages.json'), 'utf8')) as { snapshots: object })
          .snapshots,
      ),
    ).toEqual(['s1', 's2', 's3', 's4']);
    expect(readFileSync(path.join(dir, 'input/c.csv'), 'utf8')).toBe(C);
    expect(readFileSync(path.join(dir, 'input/a.csv'), 'utf8')).toBe(A3);
    expect(existsSync(path.join(dir, 'output/b.csv'))).toBe(false);
    expect(readFileSync(path.join(dir, 'README.md'), 'utf8')).toBe('# not data\n');

    // still the legacy layout (s2, s3 have no ZFS snapshot), head s4
    expect(await fs.repositoryLayout()).toBe('legacy');
    const snaps = await fs.listSnapshots();
    expect(snaps.map((s) => s.snapshotId)).toEqual(['s1', 's2', 's3', 's4']);
    expect(snaps[3]).toMatchObject({ snapshotId: 's4', message: 'new extract', manifestHash: info.manifestHash });
    expect(await readAll(await fs.readFile('input/c.csv'))).toBe(C);
    expect(await readAll(await fs.readSnapshotFile('s4', 'input/c.csv'))).toBe(C);
    expect(await readAll(await fs.readSnapshotFile('s1', 'input/a.csv'))).toBe(A1);
    await expect(fs.readSnapshotFile('s3', 'input/a.csv')).rejects.toThrow(
      'snapshot s3 has no ZFS snapshot in this repository (made by HRDAG/dsg, which snapshots only at init)',
    );

    // and it takes the next sync (a new instance: nothing remembered)
    const fs2 = new ZfsRemoteFilesystem({
      parent: p.dataset,
      repo: 'proj',
      mountpoint: '/nonexistent/assumed',
      hasher: createXxh3Hasher,
    });
    const t2 = tx();
    await fs2.begin(t2);
    const s5 = buildSnapshot([file('input/a.csv', A3, '2024-02-01T10:00:00-08:00')], {
      snapshotId: 's5',
      previous: s4.metadata,
      message: 'drop c',
      user: USER,
      createdAt: new Date('2026-12-03T10:00:00Z'),
      projectConfig: null,
    });
    await fs2.deleteFile(t2, 'input/c.csv');
    await upload(fs2, t2, '.dsg/last-sync.json', serializeManifest(s5));
    await fs2.commit(t2, {
      snapshotId: 's5',
      message: 'drop c',
      manifestHash: s5.metadata!.snapshot_hash!,
      user: USER,
      createdAt: s5.metadata!.created_at,
    });
    expect(zfsGet(ds, 'mountpoint')).toBe(`${dir}\tlocal`);
    expect(existsSync(path.join(dir, 'input/c.csv'))).toBe(false);
    expect((await fs2.listSnapshots()).at(-1)?.snapshotId).toBe('s5');
    expect(await readAll(await fs2.readSnapshotFile('s4', 'input/c.csv'))).toBe(C);
    await expect
      .poll(() => listAll(p.dataset).join('\n'), { timeout: 120_000 })
      .not.toMatch(/-view-|-sync-|-old-|sync-temp/);
  });

  it('copyFile inside a legacy repository: a rename of a live file and a copy of a 1 MiB upload, committed in place', async () => {
    const { dir, fs, m } = legacy();
    const big = randomBytes(768 * 1024).toString('base64'); // 1 MiB: several read chunks
    expect(Buffer.byteLength(big)).toBe(1024 * 1024);
    const t = tx();
    await fs.begin(t);
    await upload(fs, t, 'input/big.csv', big);
    await fs.copyFile(t, 'input/a.csv', 'input/renamed.csv', { hash: hashBytes(A3), size: Buffer.byteLength(A3) });
    await fs.deleteFile(t, 'input/a.csv');
    expect(
      await fs.copyFile(t, 'input/big.csv', 'output/big-copy.csv', {
        hash: hashBytes(big),
        size: 1024 * 1024,
        mtime: '2024-03-04T05:06:07.000Z',
      }),
    ).toEqual({ size: 1024 * 1024 });
    // what this transaction deleted, a link and other content are refused, and leave nothing
    await fs.writeLink(t, 'output/latest', 'b.csv');
    await expect(fs.copyFile(t, 'input/a.csv', 'x.csv', { hash: hashBytes(A3) })).rejects.toBeInstanceOf(NotFoundError);
    await expect(fs.copyFile(t, 'output/latest', 'x.csv', { hash: hashBytes(B) })).rejects.toMatchObject({
      code: 'VALIDATION',
    });
    await expect(fs.copyFile(t, 'output/b.csv', 'x.csv', { hash: hashBytes(C) })).rejects.toMatchObject({
      code: 'HASH_MISMATCH',
    });
    const { s4, info } = s4Of(m, [
      file('input/renamed.csv', A3, '2024-02-01T10:00:00-08:00'),
      file('input/big.csv', big),
      file('output/b.csv', B),
      file('output/big-copy.csv', big, '2024-03-04T05:06:07.000Z'),
    ]);
    await writeMeta(fs, t, m, s4);
    await fs.commit(t, info);
    expect(readFileSync(path.join(dir, 'input/renamed.csv'), 'utf8')).toBe(A3);
    expect(existsSync(path.join(dir, 'input/a.csv'))).toBe(false);
    expect(existsSync(path.join(dir, 'x.csv'))).toBe(false);
    expect(readFileSync(path.join(dir, 'output/big-copy.csv'), 'utf8')).toBe(big);
    expect(statSync(path.join(dir, 'output/big-copy.csv')).mtime.toISOString()).toBe('2024-03-04T05:06:07.000Z');
    expect(readdirSync(path.join(dir, 'output')).sort()).toEqual(['b.csv', 'big-copy.csv', 'latest']);
    expect(await readAll(await fs.readSnapshotFile('s1', 'input/a.csv'))).toBe(A1);
  });

  it('rolled-back and failed transactions leave no trace: zfs list (with mountpoints) and the tree as before', async () => {
    const { p, ds, dir, fs, m } = legacy();
    const zstate = (): string[] =>
      listAll(p.dataset, ['name', 'origin', 'mountpoint', 'mounted', 'dsg:tx', 'dsg:phase']);
    const before = zstate();
    const files = tree(dir);
    const { s4, info } = s4Of(m, [
      file('input/a.csv', A3, '2024-02-01T10:00:00-08:00'),
      file('output/b.csv', B),
      file('input/c.csv', C),
    ]);
    const unchanged = async (): Promise<void> => {
      expect(zstate()).toEqual(before);
      expect(tree(dir)).toEqual(files);
      expect(await fs.repositoryLayout()).toBe('legacy');
      expect((await fs.listSnapshots()).map((s) => s.snapshotId)).toEqual(['s1', 's2', 's3']);
    };

    // rolled back by the caller
    const t1 = tx();
    await fs.begin(t1);
    await upload(fs, t1, 'input/c.csv', C);
    await writeMeta(fs, t1, m, s4);
    expect((await fs.rollback(t1)).leftovers).toEqual([]);
    await unchanged();

    // refused by commit before anything irreversible: the staged last-sync.json is not the snapshot committed
    const t2 = tx();
    await fs.begin(t2);
    await upload(fs, t2, 'input/c.csv', C);
    const e2 = await fs.commit(t2, info).catch((x: unknown) => x);
    expect(e2).toBeInstanceOf(TransactionCommitError);
    expect(String((e2 as Error).message)).toMatch(/\.dsg\/last-sync\.json names s3, not s4/);
    expect((await fs.rollback(t2)).leftovers).toEqual([]);
    await unchanged();

    // refused: not the snapshot after the head
    const t3 = tx();
    await fs.begin(t3);
    await writeMeta(fs, t3, m, s4);
    await expect(fs.commit(t3, { ...info, snapshotId: 's6' })).rejects.toThrow(
      /s6 is not the next one after the head s3/,
    );
    expect((await fs.rollback(t3)).leftovers).toEqual([]);
    await unchanged();

    // refused: the original synced in place meanwhile (it takes no dsg lock)
    const t4 = tx();
    await fs.begin(t4);
    await writeMeta(fs, t4, m, s4);
    const theirs = buildSnapshot([file('input/a.csv', A3)], {
      snapshotId: 's4',
      previous: m.s3.metadata,
      message: 'Sync operation',
      user: 'bo@example.org',
      createdAt: new Date(),
      projectConfig: null,
    });
    const ours = readFileSync(path.join(dir, '.dsg/last-sync.json'));
    writeFileSync(path.join(dir, '.dsg/last-sync.json'), serializeManifest(theirs));
    await expect(fs.commit(t4, info)).rejects.toThrow(/moved from s3 to s4/);
    expect((await fs.rollback(t4)).leftovers).toEqual([]);
    writeFileSync(path.join(dir, '.dsg/last-sync.json'), ours);
    await unchanged();

    // a real failure after the point of no return (promote): rollback gives P/<name> back, with its own mountpoint
    const t5 = tx();
    zfsRetry('create', `${p.dataset}/proj-old-${t5}`);
    const withObstacle = zstate();
    await fs.begin(t5);
    await upload(fs, t5, 'input/c.csv', C);
    await writeMeta(fs, t5, m, s4);
    const e5 = await fs.commit(t5, info).catch((x: unknown) => x);
    expect(e5).toBeInstanceOf(TransactionCommitError);
    expect(listAll(p.dataset, ['name', 'origin'])).toContain(`${ds}\t${p.dataset}/proj-sync-${t5}@sync-temp-${t5}`);
    const r5 = await fs.rollback(t5);
    expect(r5.leftovers).toEqual([
      { name: `${p.dataset}/proj-old-${t5}`, error: expect.stringMatching(/not made by/) as unknown },
    ]);
    expect(zstate()).toEqual(withObstacle);
    zfsRetry('destroy', `${p.dataset}/proj-old-${t5}`);
    await unchanged();
    expect(zfsGet(ds, 'mountpoint')).toBe(`${dir}\tlocal`);

    // and after all that, a sync still commits
    const t6 = tx();
    await fs.begin(t6);
    await upload(fs, t6, 'input/c.csv', C);
    await writeMeta(fs, t6, m, s4);
    await fs.commit(t6, info);
    expect(JSON.parse(readFileSync(path.join(dir, '.dsg/last-sync.json'), 'utf8'))).toMatchObject({
      metadata: { snapshot_id: 's4' },
    });
  });

  it('refuses to sync a dataset with child datasets (the clone would not keep them), and reads need the dataset mounted', async () => {
    const { p, ds, fs } = legacy();
    zfsRetry('create', `${ds}/child`);
    const before = listAll(p.dataset);
    await expect(fs.begin(tx())).rejects.toMatchObject({ code: 'ZFS_CHILD_DATASETS' });
    expect(listAll(p.dataset)).toEqual(before);
    zfsRetry('destroy', `${ds}/child`);
    zfsRetry('unmount', ds);
    const fresh = new ZfsRemoteFilesystem({
      parent: p.dataset,
      repo: 'proj',
      mountpoint: p.mountpoint,
      hasher: createXxh3Hasher,
    });
    await expect(fresh.listSnapshots()).rejects.toMatchObject({ code: 'ZFS_NOT_MOUNTED' });
    await expect(fresh.readFile('input/a.csv')).rejects.toMatchObject({ code: 'ZFS_NOT_MOUNTED' });
    zfsRetry('mount', ds);
    expect((await fresh.listSnapshots()).at(-1)?.snapshotId).toBe('s3');
  });

  /** Each commit step, killed, then recover(): the old head s3 or the new s4, and P/<name> mounted at its own mountpoint either way. */
  it.each([
    ['zfs.sync.after-unmount', 'old'],
    ['zfs.sync.after-promote', 'new'],
    ['zfs.sync.after-rename-new', 'new'],
    ['zfs.sync.after-set-mountpoint', 'new'],
    ['zfs.sync.after-snapshot', 'new'],
  ] as const)(
    'killed at %s → recover() ends at the %s head, mounted where the original put it',
    async (fault, expected) => {
      const { p, ds, dir, m } = legacy('repo'); // the crash child opens P/repo
      const { s4 } = s4Of(m, [
        file('input/a.csv', A3, '2024-02-01T10:00:00-08:00'),
        file('output/b.csv', B),
        file('input/c.csv', C),
      ]);
      const r = await runChild(
        p,
        's4',
        {
          'input/c.csv': C,
          '.dsg/last-sync.json': serializeManifest(s4),
          '.dsg/sync-messages.json': messages(m.s1, m.s2, m.s3, s4),
        },
        fault,
      );
      expect(r.signal, r.out).toBe('SIGKILL');
      const fs = new ZfsRemoteFilesystem({
        parent: p.dataset,
        repo: 'repo',
        mountpoint: p.mountpoint,
        hasher: createXxh3Hasher,
      });
      const rep = await fs.recover();
      expect(rep.leftovers).toEqual([]);
      expect(rep.transactions.map((x) => x.action)).toEqual([expected === 'new' ? 'rolled-forward' : 'rolled-back']);
      expect(zfsGet(ds, 'mountpoint')).toBe(`${dir}\tlocal`);
      expect(zfsGet(ds, 'mounted')).toBe('yes\t-');
      const head = expected === 'new' ? 's4' : 's3';
      expect(JSON.parse(readFileSync(path.join(dir, '.dsg/last-sync.json'), 'utf8'))).toMatchObject({
        metadata: { snapshot_id: head },
      });
      expect(existsSync(path.join(dir, 'input/c.csv'))).toBe(expected === 'new');
      expect((await fs.listSnapshots()).map((s) => s.snapshotId)).toEqual(
        expected === 'new' ? ['s1', 's2', 's3', 's4'] : ['s1', 's2', 's3'],
      );
      expect(listAll(p.dataset).join('\n')).not.toMatch(/-sync-|-old-|sync-temp|-view-/);
      expect(await fs.repositoryLayout()).toBe('legacy');
    },
  );

  /** A repository of dsg's own layout with two commits (s1, s2), each with its manifest in the tree. */
  async function ownRepo(): Promise<{ p: TestParent; fs: ZfsRemoteFilesystem; live: string }> {
    const p = freshParent(env!, 'zleg');
    parents.push(p);
    const fs = new ZfsRemoteFilesystem({
      parent: p.dataset,
      repo: 'own',
      mountpoint: p.mountpoint,
      hasher: createXxh3Hasher,
    });
    const s1 = buildSnapshot([file('input/a.csv', A1)], {
      snapshotId: 's1',
      previous: null,
      message: 'first',
      user: USER,
      createdAt: new Date('2026-12-01T00:00:00Z'),
      projectConfig: null,
      notes: 'init',
    });
    const s2 = buildSnapshot([file('input/a.csv', A3)], {
      snapshotId: 's2',
      previous: s1.metadata,
      message: 'second',
      user: USER,
      createdAt: new Date('2026-12-02T00:00:00Z'),
      projectConfig: null,
    });
    const info = (mf: Manifest, message: string): SnapshotInfo => ({
      snapshotId: mf.metadata!.snapshot_id,
      message,
      manifestHash: mf.metadata!.snapshot_hash!,
      user: USER,
      createdAt: mf.metadata!.created_at,
    });
    const t1 = tx();
    expect((await fs.begin(t1)).pattern).toBe('init');
    await upload(fs, t1, 'input/a.csv', A1);
    await upload(fs, t1, '.dsg/last-sync.json', serializeManifest(s1));
    await fs.commit(t1, info(s1, 'first (zfs)'));
    const t2 = tx();
    await fs.begin(t2);
    await upload(fs, t2, 'input/a.csv', A3);
    await upload(fs, t2, '.dsg/last-sync.json', serializeManifest(s2));
    await fs.commit(t2, info(s2, 'second (zfs)'));
    return { p, fs, live: path.join(p.mountpoint, 'own') };
  }

  it("dsg's own layout is unaffected: real manifests in the tree, an @sN per commit, history from ZFS", async () => {
    const { p, fs } = await ownRepo();
    expect(await fs.repositoryLayout()).toBe('dsg');
    // history from the @sN properties, as before
    expect((await fs.listSnapshots()).map((s) => [s.snapshotId, s.message])).toEqual([
      ['s1', 'first (zfs)'],
      ['s2', 'second (zfs)'],
    ]);
    expect(await readAll(await fs.readSnapshotFile('s1', 'input/a.csv'))).toBe(A1);
    expect(await readAll(await fs.readSnapshotFile('s2', 'input/a.csv'))).toBe(A3);
    await expect(fs.readSnapshotFile('s3', 'input/a.csv')).rejects.toThrow(/snapshot s3 of own does not exist/);
    expect(zfsGet(`${p.dataset}/own`, 'mountpoint')).toMatch(
      new RegExp(`^${path.join(p.mountpoint, 'own')}\tinherited from `),
    );
    expect(listAll(p.dataset).map((l) => l.split(p.dataset).join('P'))).toEqual(['P', 'P/own', 'P/own@s1', 'P/own@s2']);
  });
  it('a session records the settled head file on the live dataset: later ones take the head from it unparsed, and parse a file changed since', async () => {
    const { p, fs, live } = await ownRepo();
    const ds = `${p.dataset}/own`;
    const headFile = path.join(live, '.dsg/last-sync.json');
    const stamp = (): string => {
      const st = statSync(headFile, { bigint: true });
      return `${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
    };
    const prop = (): string => zfsGet(ds, 'dsg:head-file').split('\t')[0]!;
    const inspect = async (headRacyMs?: number): Promise<{ layout?: string; head?: string | null; id?: unknown }> => {
      const o = { parent: p.dataset, repo: 'own', mountpoint: p.mountpoint, zfs: new Zfs() };
      const ops = new ZfsOperations(headRacyMs === undefined ? o : { ...o, headRacyMs });
      const st = await ops.inspect();
      return { layout: st?.layout, head: st?.head, id: st?.headMetadata?.['snapshot_id'] };
    };
    // just committed: read whole, and not recorded (a rewrite within its timestamp granule could keep every
    // field). "Just" is an hour here: on a busy machine the commit above can be more than HEAD_RACY_MS ago.
    expect(await inspect(3_600_000)).toEqual({ layout: 'dsg', head: 's2', id: 's2' });
    expect(prop()).toBe('-');
    await new Promise((r) => setTimeout(r, HEAD_RACY_MS + 100)); // (a state to reach, not a speed)
    expect(await inspect()).toEqual({ layout: 'dsg', head: 's2', id: 's2' });
    expect(prop()).toBe(`${stamp()}:s2`);
    // taken from the property: no metadata block was read
    expect(await inspect()).toEqual({ layout: 'dsg', head: 's2', id: undefined });
    // the property is what is trusted (only the agent sets it): one naming s1 for this very file is believed
    execFileSync('zfs', ['set', `dsg:head-file=${stamp()}:s1`, ds]);
    expect(await inspect()).toEqual({ layout: 'dsg', head: 's1', id: undefined });
    // a value that is not a head file: the manifest is read whole, and the property set right again
    execFileSync('zfs', ['set', 'dsg:head-file=12:junk', ds]);
    expect(await inspect()).toEqual({ layout: 'dsg', head: 's2', id: 's2' });
    expect(prop()).toBe(`${stamp()}:s2`);
    // a commit makes a new dataset generation, which does not inherit it
    const manifest = (id: string, content: string) =>
      buildSnapshot([file('input/a.csv', content)], {
        snapshotId: id,
        previous: null,
        message: id,
        user: USER,
        createdAt: new Date('2026-12-03T00:00:00Z'),
        projectConfig: null,
      });
    const t = tx();
    await fs.begin(t);
    await upload(fs, t, '.dsg/last-sync.json', serializeManifest(manifest('s3', C)));
    await fs.commit(t, info(3));
    expect(prop()).toBe('-');
    expect(await inspect()).toEqual({ layout: 'dsg', head: 's3', id: 's3' });
    // HRDAG/dsg syncs in place (s4, no @s4) after a session recorded s3: the identity moved, so the file is read
    execFileSync('zfs', ['set', `dsg:head-file=${stamp()}:s3`, ds]);
    expect(await inspect()).toEqual({ layout: 'dsg', head: 's3', id: undefined });
    writeFileSync(headFile, serializeManifest(manifest('s4', A1)));
    expect(await inspect()).toEqual({ layout: 'legacy', head: 's4', id: 's4' });
  });
});
