import { spawnSync } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { listAll } from '@dsg/testenv';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BACKENDS, World, backupsOf, leftovers, put, tree, type Client } from './world.js';

// The client PROCESS is killed (SIGKILL via DSG_FAULT) at a point of the
// sync; the next command's recovery must leave a consistent tree.

const CHILD = fileURLToPath(new URL('../fixtures/sync-child.mjs', import.meta.url));
const F = 'input/f.txt';
const G = 'input/g.txt';
describe.each(BACKENDS)('%s repository', (backend) => {
  let w: World;
  let a: Client;
  let b: Client;
  const EXPECTED = { [F]: 'alice-v2', [G]: 'bob-new', 'input/keep.txt': 'k2', 'input/del.txt': 'd' };

  beforeEach(async () => {
    w = await World.create(backend);
    a = await w.client('alice', { [F]: 'v1', 'input/keep.txt': 'k', 'input/del.txt': 'd' });
    await w.sync(a, 'init');
    b = await w.client('bob');
    await w.clone(b);
    await put(b, G, 'bob-new');
    await put(b, 'input/keep.txt', 'k2');
    await w.sync(b); // s2
    await put(a, F, 'alice-v2');
  });
  afterEach(async () => {
    await w.dispose();
  });

  function backendArg(): string {
    return JSON.stringify(
      w.parent
        ? { backend: 'zfs', parent: w.parent.dataset, mountpoint: w.parent.mountpoint }
        : { backend: 'posix', root: w.repoRoot },
    );
  }

  function killedSync(point: string): void {
    const res = spawnSync(process.execPath, [CHILD, backendArg(), JSON.stringify(a.project), 'killed'], {
      env: { ...process.env, DSG_FAULT: point },
      encoding: 'utf8',
    });
    expect(res.stderr).not.toMatch(/Error/);
    expect(res.signal).toBe('SIGKILL');
  }

  describe('client process killed during a sync', () => {
    it('the child really syncs when no fault is set (the harness works)', () => {
      const res = spawnSync(process.execPath, [CHILD, backendArg(), JSON.stringify(a.project), 'ok'], {
        encoding: 'utf8',
      });
      expect(res.status).toBe(0);
      expect(JSON.parse(res.stdout)).toEqual({ kind: 'snapshot', snapshotId: 's3' });
    });

    for (const point of [
      'tx.after-remote-commit',
      'client.commit.after-journal',
      'client.commit.after-first-op',
      'client.commit.before-journal-drop',
    ]) {
      it(`killed at ${point} (remote committed) → recovery completes the apply; no file lost or duplicated`, async () => {
        killedSync(point);
        expect(await w.head()).toBe('s3');
        expect(await w.remoteTree()).toEqual(EXPECTED);
        const rep = await w.recover(a);
        expect(rep.transactions.map((t) => t.action)).toEqual(['rolled-forward']);
        expect(rep.leftovers).toEqual([]);
        expect(await tree(a.root)).toEqual(EXPECTED); // exactly these files: none missing, none extra
        expect(Object.values(await backupsOf(a))).toEqual(['k']);
        expect(await leftovers(a)).toEqual([]);
        // the dead process's lock does not block the next sync; all three agree
        expect((await w.sync(a)).kind).toBe('nothing');
        await w.sync(b);
        expect(await tree(b.root)).toEqual(EXPECTED);
      });
    }

    it('killed before its remote commit, then ANOTHER client makes the same snapshot id → recovery still rolls back', async () => {
      const before = await tree(a.root);
      killedSync('sync.before-commit'); // alice's journal names s3
      await put(b, 'output/bob.txt', 'b');
      expect((await w.sync(b)).snapshotId).toBe('s3'); // bob's s3, a different manifest
      const rep = await w.recover(a);
      expect(rep.transactions.map((t) => t.action)).toEqual(['rolled-back']);
      expect(await tree(a.root)).toEqual(before);
      await w.sync(a);
      expect(await tree(a.root)).toEqual({ ...EXPECTED, 'output/bob.txt': 'b' });
    });

    it('killed before the remote commit → recovery rolls the client back; the repository never saw it', async () => {
      const before = await tree(a.root);
      killedSync('sync.before-commit');
      expect(await w.head()).toBe('s2');
      const rep = await w.recover(a);
      expect(rep.transactions.map((t) => t.action)).toEqual(['rolled-back']);
      expect(await tree(a.root)).toEqual(before);
      expect(await leftovers(a)).toEqual([]);
      const r = await w.sync(a);
      expect(r.snapshotId).toBe('s3');
      expect(await tree(a.root)).toEqual(EXPECTED);
      if (w.parent)
        expect(listAll(w.parent.dataset).filter((n) => /-(init|sync|old)-|@sync-temp-/.test(n))).toEqual([]);
      else expect(await readdir(`${w.repoRoot}/proj/tx`).catch(() => [])).toEqual([]);
    });
  });
});
