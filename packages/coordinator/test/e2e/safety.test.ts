import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LockedError, NotFoundError, ValidationError, type ProgressEvent } from '@dsg/contracts';
import { InvalidNamesError, RemoteMovedError, runClone, runSync } from '../../src/index.js';
import { World, leftovers, put, tree, type Client } from './world.js';

const F = 'input/f.txt';
let w: World;
let a: Client;
let base: Record<string, string>;
beforeEach(async () => {
  w = await World.create();
  a = await w.client('alice', { [F]: 'v1', 'input/k.txt': 'k' });
  await w.sync(a, 'init');
  base = await tree(a.root);
});
afterEach(async () => {
  await w.dispose();
});

async function corruptRemoteManifest(text: string): Promise<void> {
  const snap = path.join(w.repoRoot, 'proj', 'snapshots', 's1');
  await chmod(snap, 0o755).catch(() => undefined);
  await chmod(path.join(snap, '.dsg'), 0o755).catch(() => undefined);
  const file = path.join(snap, '.dsg', 'last-sync.json');
  await chmod(file, 0o644).catch(() => undefined);
  await writeFile(`${file}.new`, text);
  const { rename } = await import('node:fs/promises');
  await rename(`${file}.new`, file);
}

describe('an unreadable or invalid manifest is an error, never "empty"', () => {
  it('an invalid repository manifest refuses the sync and touches nothing', async () => {
    await corruptRemoteManifest('{"entries": {}, "metadata": {"snapshot_id": 7}}');
    await expect(w.plan(a)).rejects.toBeInstanceOf(ValidationError);
    await expect(w.sync(a)).rejects.toBeInstanceOf(ValidationError);
    expect(await tree(a.root)).toEqual(base);
  });

  it('a repository manifest that is not JSON refuses the sync (the ancestor deleted local files here)', async () => {
    await corruptRemoteManifest('garbage');
    await expect(w.sync(a)).rejects.toBeInstanceOf(ValidationError);
    expect(await tree(a.root)).toEqual(base);
  });

  it('an invalid local last-sync.json refuses the sync', async () => {
    await writeFile(path.join(a.root, '.dsg/last-sync.json'), '{"entries": [');
    await expect(w.sync(a)).rejects.toBeInstanceOf(ValidationError);
    expect(await tree(a.root)).toEqual(base);
    expect(await w.head()).toBe('s1');
  });

  it('a repository that vanished while this project has synced before is refused, not treated as empty', async () => {
    a.project.name = 'other';
    const { transport, remote } = await (async () => {
      const { LocalTransport, openRemote } = await import('@dsg/transports');
      const t = new LocalTransport({ mode: 'in-process', server: w.server });
      return { transport: t, remote: await openRemote(t, 'other') };
    })();
    const clientFs = w.clientFs(a);
    await expect(runSync({ project: a.project, clientFs, remote, transport, message: 'm' })).rejects.toBeInstanceOf(
      NotFoundError,
    );
    expect(await tree(a.root)).toEqual(base);
  });
});

describe('refusals before any transfer', () => {
  it('invalid names refuse the sync', async () => {
    await put(a, 'input/bad?.txt', 'x');
    await put(a, 'input/g.txt', 'g');
    const err = await w.sync(a).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidNamesError);
    expect((err as InvalidNamesError).invalid.map((i) => i.path)).toEqual(['input/bad?.txt']);
    expect(await w.head()).toBe('s1');
  });

  it('a plan made against an older head is refused under the lock', async () => {
    const { transport, remote } = await w.session();
    await put(a, 'input/g.txt', 'g');
    await expect(
      runSync({
        project: a.project,
        clientFs: w.clientFs(a),
        remote,
        transport,
        message: 'm',
        expectedRemoteSnapshot: 's0',
      }),
    ).rejects.toBeInstanceOf(RemoteMovedError);
    expect(await w.head()).toBe('s1');
  });

  it('a repository locked by another session → LockedError, nothing changed', async () => {
    const other = await w.session();
    await other.remote.lock({
      user: 'bob@example.org',
      host: 'elsewhere',
      pid: process.pid,
      since: new Date().toISOString(),
    });
    try {
      await put(a, 'input/g.txt', 'g');
      const err = await w.sync(a).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(LockedError);
      expect((err as LockedError).holder.user).toBe('bob@example.org');
      expect(await w.head()).toBe('s1');
    } finally {
      await other.remote.unlock();
      await other.transport.end();
    }
    expect((await w.sync(a)).snapshotId).toBe('s2'); // released: works now
  });

  it('dry-run plans without writing anything or holding the lock', async () => {
    await put(a, 'input/g.txt', 'g');
    const { transport, remote } = await w.session();
    const r = await runSync({
      project: a.project,
      clientFs: w.clientFs(a),
      remote,
      transport,
      message: 'm',
      dryRun: true,
    });
    expect(r.kind).toBe('dry-run');
    expect(r.plan.counts.upload).toBe(1);
    expect(await w.head()).toBe('s1');
    expect(await leftovers(a)).toEqual([]);
    expect((await w.sync(a)).snapshotId).toBe('s2');
  });
});

describe('transfers', () => {
  it('reports progress (files, bytes) with totals, bounded concurrency', async () => {
    const sizes = [10, 2000, 300_000, 5, 70_000, 1];
    for (const [i, n] of sizes.entries()) await put(a, `output/f${i}.bin`, 'x'.repeat(n));
    const events: ProgressEvent[] = [];
    const { transport, remote } = await w.session();
    const r = await runSync({
      project: a.project,
      clientFs: w.clientFs(a),
      remote,
      transport,
      message: 'm',
      concurrency: 2,
      onProgress: (e) => events.push(e),
    });
    expect(r.uploaded.sort()).toEqual(sizes.map((_, i) => `output/f${i}.bin`).sort());
    const total = sizes.reduce((x, y) => x + y, 0);
    expect(r.bytes.uploaded).toBe(total);
    // one event per finished file (those name it); byte events in between may come on a slow run
    const up = events.filter((e) => e.phase === 'upload' && e.path !== undefined);
    expect(up).toHaveLength(sizes.length);
    expect(up.map((e) => e.files)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(up.every((e) => e.totalFiles === 6 && e.totalBytes === total)).toBe(true);
    expect(up.at(-1)!.bytes).toBe(total);
    expect(events.at(-1)!.phase).toBe('commit');
  });

  it('an upload whose bytes changed after the scan is refused by hash, and the sync rolls back', async () => {
    // the remote verifies the promised hash: a file rewritten between plan and upload cannot slip in;
    // one whose size changed is refused by the client before its bytes could run into the next file of a pack
    await put(a, 'input/g.txt', 'g1');
    for (const [tampered, refusal] of [
      ['g2', /hash mismatch for input\/g.txt/],
      ['tampered', /input\/g.txt changed since it was scanned: it is longer than the 2 bytes expected/],
      ['g', /input\/g.txt changed since it was scanned: it is 1 bytes, not the 2 expected/],
    ] as const) {
      const { transport, remote } = await w.session();
      const clientFs = w.clientFs(a);
      const realRead = clientFs.readFile.bind(clientFs);
      clientFs.readFile = (p: string) => (p === 'input/g.txt' ? Readable.from([Buffer.from(tampered)]) : realRead(p));
      await expect(runSync({ project: a.project, clientFs, remote, transport, message: 'm' })).rejects.toThrow(refusal);
      expect(await w.head()).toBe('s1');
    }
  });
});

describe('clone', () => {
  it('refuses a repository that does not exist', async () => {
    const b = await w.client('bob');
    b.project.name = 'nothing-here';
    const { LocalTransport, openRemote } = await import('@dsg/transports');
    const t = new LocalTransport({ mode: 'in-process', server: w.server });
    const remote = await openRemote(t, 'nothing-here');
    await expect(
      runClone({ project: b.project, clientFs: w.clientFs(b), remote, transport: t }),
    ).rejects.toBeInstanceOf(NotFoundError);
  });

  it('refuses a directory that is already a working copy', async () => {
    await expect(w.clone(a)).rejects.toMatchObject({ code: 'ALREADY_CLONED' });
  });

  it('resumes by hash: files already present and equal are not downloaded again; local-only files stay', async () => {
    const b = await w.client('bob', { [F]: 'v1', 'output/mine.txt': 'm' });
    const r = await w.clone(b);
    expect(r.downloaded).toEqual(['input/k.txt']);
    expect(await tree(b.root)).toEqual({ ...base, 'output/mine.txt': 'm' });
    expect(await readFile(path.join(b.root, '.dsg/last-sync.json'), 'utf8')).toBe(
      await readFile(path.join(w.currentDir, '.dsg/last-sync.json'), 'utf8'),
    );
    const s = await w.sync(b);
    expect(s.uploaded).toEqual(['output/mine.txt']);
  });

  it('a clone conflicting with an existing local file refuses and downloads nothing', async () => {
    const b = await w.client('bob', { [F]: 'different' });
    await expect(w.clone(b)).rejects.toMatchObject({ code: 'CONFLICT' });
    expect(await tree(b.root)).toEqual({ [F]: 'different' });
    await mkdir(path.join(b.root, '.dsg'), { recursive: true });
    expect(await leftovers(b)).toEqual([]);
  });
});

describe('init', () => {
  it('of an empty project still creates s1 (the repository comes to exist)', async () => {
    const c = await w.client('carol');
    c.project.name = 'empty';
    const { LocalTransport, openRemote } = await import('@dsg/transports');
    const t = new LocalTransport({ mode: 'in-process', server: w.server });
    const remote = await openRemote(t, 'empty');
    const r = await runSync({
      project: c.project,
      clientFs: w.clientFs(c),
      remote,
      transport: t,
      message: 'empty init',
    });
    expect(r.kind).toBe('snapshot');
    expect(r.snapshotId).toBe('s1');
    const m = JSON.parse(await readFile(path.join(c.root, '.dsg/last-sync.json'), 'utf8')) as {
      entries: object;
      metadata: { snapshot_id: string };
    };
    expect(m.entries).toEqual({});
    expect(m.metadata.snapshot_id).toBe('s1');
  });
});

describe('repositories the original wrote', () => {
  it('a sync-messages.json one snapshot behind last-sync.json (as the original uploads it) is completed by the next sync', async () => {
    const snap = path.join(w.repoRoot, 'proj', 'snapshots', 's1', '.dsg');
    await chmod(path.dirname(snap), 0o755).catch(() => undefined);
    await chmod(snap, 0o755).catch(() => undefined);
    const file = path.join(snap, 'sync-messages.json');
    const before = JSON.parse(await readFile(file, 'utf8')) as {
      metadata_version: string;
      snapshots: Record<string, { snapshot_notes: string }>;
    };
    expect(before.metadata_version).toBe('0.4.4');
    expect(before.snapshots['s1']?.snapshot_notes).toBe('init');
    await chmod(file, 0o644).catch(() => undefined);
    await writeFile(file, JSON.stringify({ metadata_version: '0.4.4', snapshots: {} }, null, 2));
    await put(a, F, 'v2');
    const r = await w.sync(a);
    expect(r.snapshotId).toBe('s2');
    const after = JSON.parse(
      await readFile(path.join(w.currentDir, '.dsg/sync-messages.json'), 'utf8'),
    ) as typeof before;
    expect(Object.keys(after.snapshots)).toEqual(['s1', 's2']);
    expect(after.snapshots['s1']?.snapshot_notes).toBe('init');
    expect(after.snapshots['s2']?.snapshot_notes).toBe('sync');
  });
});
