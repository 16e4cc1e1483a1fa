// `dsg status` through the fast path (treeIsLastSync: the last sync's mirror
// and the stat cache as columns, no object per unchanged entry) gives exactly
// the answer of the full plan: when the tree is unchanged it answers itself,
// and every change — a rewrite that kept size and mtime, a removed or new
// file, a stale stat cache row, a damaged or foreign mirror — sends it to the
// full plan with the same answer. Once the tree has been proved unchanged
// with settled files, the walk record answers in its place, and every change
// still reaches the full plan.
import { existsSync } from 'node:fs';
import { readFile, rm, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LAST_SYNC, LAST_SYNC_MIRROR, LAST_SYNC_WALK, STAT_CACHE } from '@dsg/contracts';
import { WALK_RECORD_RACY_MS } from '@dsg/manifest';
import {
  planOffline,
  planOfflineStatus,
  planStatus,
  planSync,
  type StatusPlan,
  type SyncPlan,
} from '../../src/index.js';
import { BACKENDS, World, del, put, type Backend, type Client } from './world.js';

/** What `dsg status` shows of a plan: the paths whose action is not none, refused and held-back paths, the head. */
const shown = (p: StatusPlan | SyncPlan) => ({
  paths: p.paths.filter((x) => x.action !== 'none').map((x) => [x.path, x.state, x.action]),
  invalid: p.invalid,
  heldBack: p.heldBack,
  remoteSnapshotId: p.remoteSnapshotId,
  config: p.config,
});

const HOUR_AGO = new Date(Date.now() - 3600_000);

/** Files written an hour ago: not "racy", so the scan caches their stat (as for any file not just written). */
async function aged(c: Client, files: string[]): Promise<void> {
  for (const f of files) await utimes(path.join(c.root, f), HOUR_AGO, HOUR_AGO);
}

const FILES = { 'input/a.csv': 'a1', 'input/b.csv': 'b1', 'input/sub/c.csv': 'c1', 'output/r.txt': 'r1' };

/** A repository and alice's working copy, synced once. */
async function synced(backend: Backend): Promise<{ w: World; a: Client }> {
  const w = await World.create(backend);
  const a = await w.client('alice', FILES);
  await writeFile(path.join(a.root, '.dsgconfig.yml'), 'name: proj\n');
  await aged(a, Object.keys(FILES));
  await w.sync(a, 'first');
  return { w, a };
}

describe.each(BACKENDS)('the status fast path (%s repository)', (backend) => {
  let w: World;
  let a: Client;
  beforeEach(async () => {
    ({ w, a } = await synced(backend));
    await planOffline({ project: a.project }); // the first read of the last sync writes its mirror
  });
  afterEach(async () => {
    await w.dispose();
  });

  /** Offline: the fast answer, checked against the full plan's. */
  async function offline(): Promise<StatusPlan> {
    const fast = await planOfflineStatus({ project: a.project });
    expect(shown(fast)).toEqual(shown(await planOffline({ project: a.project })));
    return fast;
  }

  /** Online (head asked by digest): the same. */
  async function online(): Promise<StatusPlan> {
    const { transport, remote } = await w.session();
    try {
      const fast = await planStatus({ project: a.project, remote });
      expect(shown(fast)).toEqual(shown(await planSync({ project: a.project, remote })));
      return fast;
    } finally {
      await transport.end();
    }
  }

  it('an unchanged tree is answered by the fast path, offline and online, with nothing written', async () => {
    const cache = await readFile(path.join(a.root, STAT_CACHE));
    const o = await offline();
    expect(o.fast).toBe(true);
    expect(o.paths.filter((p) => p.action !== 'none')).toEqual([]);
    expect(o.remoteSnapshotId).toBe('s1');
    const n = await online();
    expect(n.fast).toBe(true);
    expect(n.remoteSnapshotId).toBe('s1');
    expect(await readFile(path.join(a.root, STAT_CACHE))).toEqual(cache);
  });

  it('a rewrite that kept size and mtime (only ctime moved) is found: full path, upload', async () => {
    await writeFile(path.join(a.root, 'input/a.csv'), 'a2'); // same size
    await aged(a, ['input/a.csv']); // same mtime as synced; ctime is now
    const o = await offline();
    expect(o.fast).toBe(false);
    expect(shown(o).paths).toEqual([['input/a.csv', 'sLCR__C_eq_R_ne_L', 'upload']]);
    expect((await online()).fast).toBe(false);
  });

  it('a removed file: full path, delete_remote', async () => {
    await del(a, 'input/sub/c.csv');
    const o = await offline();
    expect(o.fast).toBe(false);
    expect(shown(o).paths).toEqual([['input/sub/c.csv', 'sxLCR__C_eq_R', 'delete_remote']]);
    expect((await online()).fast).toBe(false);
  });

  it('a new file: full path, upload', async () => {
    await put(a, 'input/sub/d.csv', 'd');
    const o = await offline();
    expect(o.fast).toBe(false);
    expect(shown(o).paths).toEqual([['input/sub/d.csv', 'sLxCxR__only_L', 'upload']]);
  });

  it('a stale stat cache row (touched, content unchanged): full path, which rehashes and finds nothing', async () => {
    await utimes(path.join(a.root, 'input/b.csv'), new Date(), new Date());
    const o = await offline();
    expect(o.fast).toBe(false);
    expect(shown(o).paths).toEqual([]);
    // the full scan cached the new stat (not racy once aged): the fast path answers again
    await aged(a, ['input/b.csv']);
    await planOffline({ project: a.project });
    expect((await offline()).fast).toBe(true);
  });

  it('a damaged mirror, or one made from other bytes, is not used: full path, same answer', async () => {
    const mirror = path.join(a.root, LAST_SYNC_MIRROR);
    const good = await readFile(mirror);
    const bad = Buffer.from(good);
    bad[bad.length - 5]! ^= 0xff;
    await writeFile(mirror, bad);
    await put(a, 'input/n.csv', 'n');
    expect((await offline()).fast).toBe(false);
    // the same manifest in other bytes (a space more): the mirror's digest no longer matches
    const file = path.join(a.root, LAST_SYNC);
    await writeFile(mirror, good);
    await writeFile(file, `${(await readFile(file, 'utf8')).trimEnd()} \n`);
    await del(a, 'input/n.csv');
    const o = await planOfflineStatus({ project: a.project });
    expect(o.fast).toBe(false);
    expect(shown(o)).toEqual(shown(await planOffline({ project: a.project })));
  });

  it('a changed project config is shown by the fast path as the full plan shows it', async () => {
    await writeFile(path.join(a.root, '.dsgconfig.yml'), 'name: proj\ndata_dirs: [input, output]\n# edited\n');
    const o = await offline();
    expect(o.fast).toBe(true);
    expect(shown(o).paths.map((p) => p[0])).toEqual(['.dsgconfig.yml']);
  });

  it('a teammate synced: the digest differs, the full plan answers (download)', async () => {
    const b = await w.client('bob');
    await w.clone(b);
    await put(b, 'input/b.csv', 'b2');
    await w.sync(b, 'bob');
    const n = await online();
    expect(n.fast).toBe(false);
    expect(shown(n).paths).toEqual([['input/b.csv', 'sLCR__L_eq_C_ne_R', 'download']]);
  });
});

describe.each(BACKENDS)('the walk record (%s repository)', (backend) => {
  let w: World;
  let a: Client;
  const record = (): string => path.join(a.root, LAST_SYNC_WALK);
  beforeEach(async () => {
    ({ w, a } = await synced(backend));
    // a record is made only for files that last changed well before it (racy-clean): wait that out once
    await new Promise((r) => setTimeout(r, WALK_RECORD_RACY_MS + 100));
    await planOffline({ project: a.project }); // the first read of the last sync writes its mirror
    expect(existsSync(record())).toBe(false);
    expect((await planOfflineStatus({ project: a.project })).fast).toBe(true);
    expect(existsSync(record())).toBe(true);
  });
  afterEach(async () => {
    await w.dispose();
  });

  it('answers an unchanged tree alone: the mirror is not read', async () => {
    // without the record, no mirror means the full path (which writes one); with it, the mirror stays absent
    await rm(path.join(a.root, LAST_SYNC_MIRROR));
    const o = await planOfflineStatus({ project: a.project });
    expect(o.fast).toBe(true);
    expect(o.remoteSnapshotId).toBe('s1');
    expect(existsSync(path.join(a.root, LAST_SYNC_MIRROR))).toBe(false);
    const { transport, remote } = await w.session();
    try {
      const n = await planStatus({ project: a.project, remote });
      expect(n.fast).toBe(true);
      expect(existsSync(path.join(a.root, LAST_SYNC_MIRROR))).toBe(false);
    } finally {
      await transport.end();
    }
    expect(shown(o)).toEqual(shown(await planOffline({ project: a.project })));
  });

  it('a rewrite that kept size and mtime (only ctime moved) is found past it: upload', async () => {
    await writeFile(path.join(a.root, 'input/a.csv'), 'a2');
    await aged(a, ['input/a.csv']);
    const o = await planOfflineStatus({ project: a.project });
    expect(o.fast).toBe(false);
    expect(shown(o).paths).toEqual([['input/a.csv', 'sLCR__C_eq_R_ne_L', 'upload']]);
  });

  it('a new file and a removed one are found past it', async () => {
    await put(a, 'output/new.txt', 'n');
    await del(a, 'input/sub/c.csv');
    const o = await planOfflineStatus({ project: a.project });
    expect(o.fast).toBe(false);
    expect(shown(o).paths).toEqual([
      ['input/sub/c.csv', 'sxLCR__C_eq_R', 'delete_remote'],
      ['output/new.txt', 'sLxCxR__only_L', 'upload'],
    ]);
  });

  it('a teammate synced: the head differs from the recorded last sync, the full plan answers (download)', async () => {
    const b = await w.client('bob');
    await w.clone(b);
    await put(b, 'input/b.csv', 'b2');
    await w.sync(b, 'bob');
    const { transport, remote } = await w.session();
    try {
      const n = await planStatus({ project: a.project, remote });
      expect(n.fast).toBe(false);
      expect(shown(n).paths).toEqual([['input/b.csv', 'sLCR__L_eq_C_ne_R', 'download']]);
    } finally {
      await transport.end();
    }
  });
});
