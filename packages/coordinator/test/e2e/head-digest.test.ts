// Status and sync with nothing new in the repository ask for the digest of its
// last-sync.json instead of downloading it (agent protocol 1.2); every other
// case still reads it, and the history check still refuses what it refused.
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { archivePath, LAST_SYNC, NotFoundError, SYNC_MESSAGES, type RemoteRepository } from '@dsg/contracts';
import { decompressArchive, parseManifest, validateChain } from '@dsg/manifest';
import type { AgentClient } from '@dsg/transports';
import { planOffline, planSync, runSync, type SyncPlan } from '../../src/index.js';
import { takeRemoteArchive } from '../../src/repository-metadata.js';
import { BACKENDS, World, del, put, type Client } from './world.js';

/** The real AgentClient, with every call of the named methods recorded as `method path` (in order). */
function recorded(remote: AgentClient): { remote: RemoteRepository; calls: string[] } {
  const calls: string[] = [];
  const watched = new Set(['readFile', 'readFiles', 'readSnapshotFile', 'fileDigest', 'exists', 'lock', 'unlock']);
  const proxy = new Proxy(remote, {
    get(t, prop, recv) {
      const v = Reflect.get(t, prop, recv) as unknown;
      if (typeof v !== 'function') return v;
      const name = String(prop);
      return (...args: unknown[]) => {
        if (watched.has(name)) calls.push(typeof args[0] === 'string' ? `${name} ${args[0]}` : name);
        return (v as (...a: unknown[]) => unknown).apply(t, args);
      };
    },
  });
  return { remote: proxy, calls };
}

/** The agent's download counters over the sessions since the last call (its `session moved:` lines). */
function sent(w: World): number {
  let bytes = 0;
  for (const line of w.agentLog.splice(0)) {
    const m = /sent (\d+) bytes/.exec(line);
    if (m) bytes += Number(m[1]);
  }
  return bytes;
}

const reads = (calls: string[], file: string): number => calls.filter((c) => c === `readFile ${file}`).length;
const actions = (p: SyncPlan): Record<string, string> =>
  Object.fromEntries(p.paths.filter((x) => x.action !== 'none').map((x) => [x.path, x.action]));

describe.each(BACKENDS)('the head asked by digest (%s repository)', (backend) => {
  let w: World;
  let a: Client;
  beforeEach(async () => {
    w = await World.create(backend);
    a = await w.client('alice', { 'input/a.csv': 'a1', 'input/b.csv': 'b1', 'output/r.txt': 'r1' });
    await w.sync(a, 'first');
    w.agentLog.splice(0);
  });
  afterEach(async () => {
    await w.dispose();
  });

  async function plan(c: Client, o: { protocol?: string } = {}): Promise<{ plan: SyncPlan; calls: string[] }> {
    const { transport, remote } = await w.session();
    if (o.protocol) remote.hello = { ...remote.hello!, protocol: o.protocol };
    const r = recorded(remote);
    try {
      return { plan: await planSync({ project: c.project, remote: r.remote }), calls: r.calls };
    } finally {
      await transport.end();
    }
  }

  async function sync(
    c: Client,
    message: string,
  ): Promise<{ result: Awaited<ReturnType<typeof runSync>>; calls: string[] }> {
    const { transport, remote } = await w.session();
    const r = recorded(remote);
    const result = await runSync({
      project: c.project,
      clientFs: w.clientFs(c),
      remote: r.remote,
      transport,
      message,
      logger: w.logger,
    });
    return { result, calls: r.calls };
  }

  it('status with nothing new: one digest, last-sync.json and sync-messages.json never read, no manifest sent', async () => {
    await put(a, 'input/a.csv', 'a2'); // a local change: still nothing new in the repository
    const { plan: p, calls } = await plan(a);
    expect(calls.filter((c) => c.startsWith('fileDigest'))).toEqual([`fileDigest ${LAST_SYNC}`]);
    expect(reads(calls, LAST_SYNC)).toBe(0);
    expect(reads(calls, SYNC_MESSAGES)).toBe(0);
    expect(calls).not.toContain('exists'); // a head file exists only in a repository that exists
    expect(p.remoteExists).toBe(true);
    expect(p.remoteSnapshotId).toBe('s1');
    expect(p.remote).toBe(p.cache); // parsed once
    expect(await p.remoteManifestBytes!.read()).toEqual(await readFile(path.join(a.root, LAST_SYNC)));
    expect(actions(p)).toEqual({ 'input/a.csv': 'upload' });
    expect(sent(w)).toBeLessThan(1000); // at most the small .dsgconfig.yml: no manifest
  });

  it("R's bytes are read when needed, and refused when last-sync.json changed since the plan", async () => {
    await put(a, 'input/a.csv', 'a2');
    const { plan: p } = await plan(a);
    const file = path.join(a.root, LAST_SYNC);
    const original = await readFile(file);
    expect(p.remoteManifestBytes).toMatchObject({ size: original.length });
    // another dsg in this working copy synced meanwhile: an archive must hold R exactly, so nothing is taken
    await writeFile(file, original.toString('utf8').replace('"first"', '"other"'));
    await expect(p.remoteManifestBytes!.read()).rejects.toMatchObject({ code: 'HASH_MISMATCH' });
    await writeFile(file, original);
    expect(await p.remoteManifestBytes!.read()).toEqual(original);
    // the archive is made from them and takes them off the plan (R as downloaded would be held to the end)
    const archive = await takeRemoteArchive(p);
    expect(decompressArchive(archive!)).toBe(original.toString('utf8'));
    expect(p.remoteManifestBytes).toBeNull();
  });

  it('an agent that speaks 1.1 is served by the full read, to the same plan', async () => {
    await put(a, 'input/a.csv', 'a2');
    const byDigest = await plan(a);
    const old = await plan(a, { protocol: '1.1' });
    expect(old.calls.some((c) => c.startsWith('fileDigest'))).toBe(true); // asked, and answered "cannot tell" …
    expect(reads(old.calls, LAST_SYNC)).toBe(1); // … so the manifest is read
    expect(reads(old.calls, SYNC_MESSAGES)).toBe(1); // and the history checked
    expect(actions(old.plan)).toEqual(actions(byDigest.plan));
    expect(await old.plan.remoteManifestBytes!.read()).toEqual(await byDigest.plan.remoteManifestBytes!.read());
    expect(old.plan.remoteSnapshotId).toBe(byDigest.plan.remoteSnapshotId);
  });

  it('a teammate synced: the digest differs, the manifest is read and checked as before', async () => {
    const b = await w.client('bob');
    await w.clone(b);
    await put(b, 'input/b.csv', 'b2');
    await w.sync(b, 'bob');
    w.agentLog.splice(0);
    const { plan: p, calls } = await plan(a);
    expect(reads(calls, LAST_SYNC)).toBe(1);
    expect(reads(calls, SYNC_MESSAGES)).toBe(1);
    expect(p.remoteSnapshotId).toBe('s2');
    expect(actions(p)).toEqual({ 'input/b.csv': 'download' });
  });

  it('a last sync the repository records differently is still refused (DIVERGED_HISTORY)', async () => {
    const file = path.join(a.root, LAST_SYNC);
    const c = JSON.parse(await readFile(file, 'utf8')) as { metadata: { snapshot_hash: string } };
    c.metadata.snapshot_hash = '0123456789abcdef'; // "another s1": not the repository's
    await writeFile(file, JSON.stringify(c, null, 2));
    await expect(plan(a)).rejects.toMatchObject({ code: 'DIVERGED_HISTORY' });
  });

  it('sync with nothing to do: the digest is asked under the lock, and nothing is read', async () => {
    const { result, calls } = await sync(a, 'nothing');
    expect(result.kind).toBe('nothing');
    expect(calls.indexOf(`fileDigest ${LAST_SYNC}`)).toBeGreaterThan(calls.indexOf('lock'));
    expect(reads(calls, LAST_SYNC)).toBe(0);
    expect(reads(calls, SYNC_MESSAGES)).toBe(0);
  });

  it("sync of a local change against an unchanged head: the next snapshot archives C's bytes as R", async () => {
    const c1 = await readFile(path.join(a.root, LAST_SYNC));
    await put(a, 'input/new.csv', 'n');
    await del(a, 'input/b.csv');
    const { result, calls } = await sync(a, 'second');
    expect(result.kind).toBe('snapshot');
    expect(result.snapshotId).toBe('s2');
    expect(calls.indexOf(`fileDigest ${LAST_SYNC}`)).toBeGreaterThan(calls.indexOf('lock'));
    expect(reads(calls, LAST_SYNC)).toBe(0);
    const archived = await readFile(path.join(w.currentDir, archivePath('s1')));
    expect(Buffer.from(decompressArchive(archived), 'utf8')).toEqual(c1);
    // the chain goes on from s1, and a teammate gets exactly the tree
    const head = (await w.remoteManifest())!;
    expect(head.metadata?.snapshot_previous).toBe('s1');
    expect(validateChain([parseManifest(c1, 's1'), head])).toEqual({ ok: true });
    const b = await w.client('bob');
    await w.clone(b);
    expect(await readFile(path.join(b.root, 'input/new.csv'), 'utf8')).toBe('n');
  });
});

describe('the plan against the last sync only (status --offline)', () => {
  let w: World;
  beforeEach(async () => {
    w = await World.create('posix');
  });
  afterEach(async () => {
    await w.dispose();
  });

  it('local changes since the last sync, with no repository at all', async () => {
    const a = await w.client('alice', { 'input/a.csv': 'a1', 'input/b.csv': 'b1', 'output/r.txt': 'r1' });
    await writeFile(path.join(a.root, '.dsgconfig.yml'), 'name: proj\n');
    await w.sync(a, 'first');
    await put(a, 'input/a.csv', 'a2');
    await put(a, 'input/c.csv', 'c');
    await del(a, 'output/r.txt');
    await writeFile(path.join(a.root, '.dsgconfig.yml'), 'name: proj\ndata_dirs: [input, output]\n');
    const p = await planOffline({ project: a.project });
    expect(p.remoteSnapshotId).toBe('s1');
    expect(p.remote).toBe(p.cache);
    expect(actions(p)).toEqual({
      '.dsgconfig.yml': 'upload',
      'input/a.csv': 'upload',
      'input/c.csv': 'upload',
      'output/r.txt': 'delete_remote',
    });
    expect(Object.values(p.counts).reduce((x, y) => x + y, 0)).toBe(p.paths.length);
    expect(p.counts.download + p.counts.conflict + p.counts.delete_local).toBe(0);
  });

  it('a working copy that never synced: NotFoundError with a hint', async () => {
    const a = await w.client('alice', { 'input/a.csv': 'a1' });
    const e = await planOffline({ project: a.project }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(NotFoundError);
    expect((e as NotFoundError).message).toMatch(/never synced/);
    expect((e as NotFoundError).recoveryHint).toMatch(/without --offline/);
  });
});
