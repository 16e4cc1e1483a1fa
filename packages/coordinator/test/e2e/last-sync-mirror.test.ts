// A working copy's last sync is read through its binary mirror
// (.dsg/last-sync.bin, written by the sync that made it, else on the first
// read): the plans of
// status and sync are the same with it, without it and with it damaged, and
// a mirror left from an earlier last sync is never used for the new one.
import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { LAST_SYNC, LAST_SYNC_MIRROR } from '@dsg/contracts';
import { decodeMirror, parseManifest } from '@dsg/manifest';
import { planOffline, planSync, type SyncPlan } from '../../src/index.js';
import { World, put, type Client } from './world.js';

const actions = (p: SyncPlan): Record<string, string> =>
  Object.fromEntries(p.paths.filter((x) => x.action !== 'none').map((x) => [x.path, x.action]));

describe('the last sync through its mirror (posix repository)', () => {
  let w: World;
  let a: Client;
  beforeEach(async () => {
    w = await World.create('posix');
    a = await w.client('alice', { 'input/a.csv': 'a1', 'input/b.csv': 'b1' });
    await w.sync(a, 'first');
  });
  afterEach(async () => {
    await w.dispose();
  });

  const plan = async (): Promise<SyncPlan> => {
    const { transport, remote } = await w.session();
    try {
      return await planSync({ project: a.project, remote });
    } finally {
      await transport.end();
    }
  };
  const mirror = (): string => path.join(a.root, LAST_SYNC_MIRROR);

  it('is written on the first read, and the plans with it, without it and with it damaged agree', async () => {
    await put(a, 'input/a.csv', 'a2');
    await rm(mirror(), { force: true });
    const first = await plan();
    expect((await stat(mirror())).size).toBeGreaterThan(0);
    const second = await plan(); // through the mirror
    await writeFile(mirror(), (await readFile(mirror())).subarray(0, 100)); // truncated: ignored
    const third = await plan();
    expect(actions(first)).toEqual({ 'input/a.csv': 'upload' });
    expect(actions(second)).toEqual(actions(first));
    expect(actions(third)).toEqual(actions(first));
    expect(second.cache.metadata).toEqual(first.cache.metadata);
    expect([...second.cache.entries.values()]).toEqual([...first.cache.entries.values()]);
    expect(actions(await planOffline({ project: a.project }))).toEqual({ 'input/a.csv': 'upload' });
  });

  it("is written by the sync that made the last sync: the new last-sync.json's own, decoded to the same manifest", async () => {
    await put(a, 'input/c.csv', 'c1');
    await w.sync(a, 'second'); // a new snapshot: its mirror comes with it, before any read
    const json = await readFile(path.join(a.root, LAST_SYNC));
    const decoded = decodeMirror(await readFile(mirror()), createHash('sha256').update(json).digest('hex'));
    const parsed = parseManifest(json);
    expect(decoded?.metadata).toEqual(parsed.metadata);
    expect(decoded?.metadata?.snapshot_id).toBe('s2');
    expect([...decoded!.entries.values()]).toEqual([...parsed.entries.values()]);
  });

  it('after the next sync, the mirror of the old last sync is not used', async () => {
    await plan(); // the mirror of s1
    const old = await readFile(mirror());
    await put(a, 'input/c.csv', 'c1');
    await w.sync(a, 'second');
    const p = await planOffline({ project: a.project });
    expect(p.cache.metadata?.snapshot_id).toBe('s2');
    expect(p.cache.entries.has('input/c.csv')).toBe(true);
    expect(actions(p)).toEqual({});
    expect(await readFile(mirror())).not.toEqual(old);
  });
});
