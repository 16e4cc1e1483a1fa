/**
 * `.dsgconfig.yml` travels beside the manifest (the original never scans it,
 * so as an entry its next sync would delete it): the repository keeps a root
 * copy written inside the transaction, each working copy the bytes it last
 * synced (.dsg/last-sync.dsgconfig.yml), and the three are compared like a
 * file's L, C and R.
 */
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CONFIG_FILE } from '@dsg/manifest';
import { CONFIG_BASE, planSync, SyncConflictError } from '../../src/index.js';
import { BACKENDS, put, read, World, type Client } from './world.js';

const CFG_A = 'name: proj\ndata_dirs: [input, output]\n';
const CFG_B = 'name: proj\ndata_dirs: [input, output]\n# edited\n';
const CFG_C = 'name: proj\ndata_dirs: [input, output]\n# other edit\n';

describe.each(BACKENDS)('the project config beside the manifest (%s repository)', (backend) => {
  let w: World;
  beforeEach(async () => {
    w = await World.create(backend);
  });
  afterEach(async () => {
    await w.dispose();
  });

  const rootCopy = (): Promise<string | null> =>
    readFile(path.join(w.currentDir, CONFIG_FILE), 'utf8').catch(() => null);
  const base = (c: Client): Promise<string | null> => read(c, CONFIG_BASE);
  const entries = async (): Promise<string[]> => [...((await w.remoteManifest())?.entries.keys() ?? [])];
  const configPlan = async (c: Client): Promise<string | undefined> =>
    (await w.plan(c)).paths.find((p) => p.path === CONFIG_FILE)?.action;

  it('init writes the root copy, never an entry; clone brings it; an edit on either side travels; both edited is a conflict', async () => {
    const a = await w.client('alice', { [CONFIG_FILE]: CFG_A, 'input/a.csv': 'a1' });
    expect(await w.sync(a, 'init')).toMatchObject({ snapshotId: 's1', uploaded: ['input/a.csv', CONFIG_FILE] });
    expect(await entries()).toEqual(['input/a.csv']);
    expect(await rootCopy()).toBe(CFG_A);
    expect(await base(a)).toBe(CFG_A);
    expect(await configPlan(a)).toBe('none');

    // clone: a working copy without a config gets the repository's, and its base
    const b = await w.client('bob');
    const cl = await w.clone(b);
    expect(cl.downloaded.sort()).toEqual([CONFIG_FILE, 'input/a.csv']);
    expect(await read(b, CONFIG_FILE)).toBe(CFG_A);
    expect(await base(b)).toBe(CFG_A);
    expect((await w.sync(b)).kind).toBe('nothing');

    // an edit of the config alone is a change: uploaded in a snapshot whose manifest still has no entry for it
    await put(a, CONFIG_FILE, CFG_B);
    expect(await configPlan(a)).toBe('upload');
    const up = await w.sync(a, 'config edit');
    expect(up).toMatchObject({ kind: 'snapshot', snapshotId: 's2', uploaded: [CONFIG_FILE] });
    expect(await entries()).toEqual(['input/a.csv']);
    expect(await rootCopy()).toBe(CFG_B);
    expect(await base(a)).toBe(CFG_B);

    // the teammate downloads it (client-only: the repository already holds it)
    expect(await configPlan(b)).toBe('download');
    expect(await w.sync(b)).toMatchObject({ kind: 'local-only', downloaded: [CONFIG_FILE] });
    expect(await read(b, CONFIG_FILE)).toBe(CFG_B);
    expect(await base(b)).toBe(CFG_B);

    // both edit: a conflict like a file's; C is not offered; L uploads, nothing is backed up as a dotfile copy
    await put(a, CONFIG_FILE, CFG_C);
    await put(b, CONFIG_FILE, CFG_A);
    expect((await w.sync(b)).snapshotId).toBe('s3');
    expect(await configPlan(a)).toBe('conflict');
    await expect(w.sync(a)).rejects.toBeInstanceOf(SyncConflictError);
    await expect(w.sync(a, 'x', { resolutions: new Map([[CONFIG_FILE, 'C']]) })).rejects.toThrow(/only with L .* or R/);
    expect(await w.sync(a, 'mine', { resolutions: new Map([[CONFIG_FILE, 'L']]) })).toMatchObject({
      snapshotId: 's4',
      uploaded: [CONFIG_FILE],
      conflictBackups: [],
    });
    expect(await rootCopy()).toBe(CFG_C);
    expect(await entries()).toEqual(['input/a.csv']);
  });

  it("a repository without a root copy (as the original's): not a reason for a snapshot, written with the next one", async () => {
    const a = await w.client('alice', { [CONFIG_FILE]: CFG_A, 'input/a.csv': 'a1' });
    await w.sync(a, 'init');
    await rm(path.join(w.currentDir, CONFIG_FILE));
    await rm(path.join(a.root, CONFIG_BASE));
    expect(await configPlan(a)).toBeUndefined();
    expect((await w.sync(a)).kind).toBe('nothing');
    // a clone of it keeps the config its caller wrote as the base: a root copy that appears later is downloaded, not a conflict
    const b = await w.client('bob', { [CONFIG_FILE]: CFG_C });
    await w.clone(b);
    expect(await base(b)).toBe(CFG_C);
    expect(await configPlan(b)).toBeUndefined();
    await put(a, 'input/a.csv', 'a2');
    expect((await w.sync(a)).uploaded.sort()).toEqual([CONFIG_FILE, 'input/a.csv']);
    expect(await rootCopy()).toBe(CFG_A);
    expect(await base(a)).toBe(CFG_A);
    expect(await entries()).toEqual(['input/a.csv']);
    expect(await configPlan(a)).toBe('none');
    expect(await configPlan(b)).toBe('download');
    const r = await w.sync(b); // downloads run in parallel: their order is not the plan's
    expect({ kind: r.kind, downloaded: [...r.downloaded].sort() }).toEqual({
      kind: 'local-only',
      downloaded: [CONFIG_FILE, 'input/a.csv'],
    });
    expect(await read(b, CONFIG_FILE)).toBe(CFG_A);
  });

  it('never synced a config, and the two differ only in form (sameConfig): not compared, not a conflict', async () => {
    const a = await w.client('alice', { [CONFIG_FILE]: CFG_A, 'input/a.csv': 'a1' });
    await w.sync(a, 'init');
    const b = await w.client('bob');
    await w.clone(b);
    await rm(path.join(b.root, CONFIG_BASE)); // as a working copy of the original's: no base
    await put(b, CONFIG_FILE, CFG_B);
    expect(await configPlan(b)).toBe('conflict');
    const plan = async (sameConfig: (l: Buffer, r: Buffer) => boolean): Promise<string | undefined> => {
      const { transport, remote } = await w.session();
      try {
        return (await planSync({ project: b.project, remote, sameConfig })).paths.find((p) => p.path === CONFIG_FILE)
          ?.action;
      } finally {
        await transport.end();
      }
    };
    expect(await plan(() => false)).toBe('conflict');
    expect(await plan((l, r) => l.toString() === CFG_B && r.toString() === CFG_A)).toBeUndefined();
  });
});
