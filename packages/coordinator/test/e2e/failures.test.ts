import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TransactionCommitError } from '@dsg/contracts';
import { BACKENDS, World, backupsOf, leftovers, put, tree, type Client } from './world.js';

// A failure injected at a named step of each component's commit and
// rollback (and of the work before them), with the real client filesystem,
// real agent and real posix repository. Final states must follow the seed:
// remote failure → both sides as before; client failure after the remote
// commit → the journal finishes the apply; never a half-applied tree.

const F = 'input/f.txt';
const G = 'input/g.txt';
describe.each(BACKENDS)('%s repository', (backend) => {
  let w: World;
  let a: Client;
  let b: Client;
  let aBefore: Record<string, string>;
  let repoBefore: Record<string, string>;
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
    await put(a, F, 'alice-v2'); // alice's next sync uploads F, downloads G and replaces keep.txt
    aBefore = await tree(a.root);
    repoBefore = await w.remoteTree();
  });
  afterEach(async () => {
    delete process.env['DSG_FAULT'];
    await w.dispose();
  });

  async function expectUntouched(): Promise<void> {
    expect(await w.head()).toBe('s2');
    expect(await w.remoteTree()).toEqual(repoBefore);
    expect(await tree(a.root)).toEqual(aBefore);
    await w.recover(a);
    expect(await leftovers(a)).toEqual([]);
    expect(await tree(a.root)).toEqual(aBefore);
  }

  async function expectRetrySucceeds(): Promise<void> {
    w.failRemote.clear();
    const r = await w.sync(a);
    expect(r.snapshotId).toBe('s3');
    expect(await tree(a.root)).toEqual(EXPECTED);
    expect(await w.remoteTree()).toEqual(EXPECTED);
  }

  describe('failures in the remote component', () => {
    for (const step of ['remote.begin', 'remote.writeFile', 'remote.deleteFile']) {
      it(`${step} fails → rolled back on both sides, tree and repository unchanged`, async () => {
        if (step === 'remote.deleteFile') {
          await (await import('node:fs/promises')).unlink(`${a.root}/input/del.txt`);
          aBefore = await tree(a.root);
        }
        w.failRemote.add(step);
        await expect(w.sync(a)).rejects.toThrow(`injected failure at ${step}`);
        await expectUntouched();
        expect(w.logs.filter((l) => l.level === 'critical')).toEqual([]);
      });
    }

    it('remote.commit fails → TransactionCommitError with the seed hint; both sides as before', async () => {
      w.failRemote.add('remote.commit');
      const err = await w.sync(a).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TransactionCommitError);
      expect((err as TransactionCommitError).recoveryHint).toBe(
        'Check remote filesystem permissions and available space',
      );
      await expectUntouched();
      await expectRetrySucceeds();
    });

    it('remote.rollback fails after a work failure → the original error, a critical log, the client restored', async () => {
      w.failRemote.add('remote.writeFile');
      w.failRemote.add('remote.rollback');
      await expect(w.sync(a)).rejects.toThrow('injected failure at remote.writeFile');
      const critical = w.logs.filter((l) => l.level === 'critical');
      expect(critical).toHaveLength(1);
      expect(critical[0]!.m).toContain('Remote filesystem rollback failed');
      await expectUntouched();
      await expectRetrySucceeds(); // the agent's recovery cleans the leftover work area
    });
  });

  describe('failures in the client component', () => {
    it('client.stageFile fails (a download) → rolled back on both sides', async () => {
      await expect(w.sync(a, 'm', { failClient: new Set(['client.stageFile']) })).rejects.toThrow(
        'injected failure at client.stageFile',
      );
      await expectUntouched();
    });

    it('client.commit fails after the remote commit → recoverable: the journal finishes the apply', async () => {
      const err = await w.sync(a, 'm', { failClient: new Set(['client.commit']) }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TransactionCommitError);
      expect((err as Error).message).toMatch(/after remote commit/);
      expect((err as TransactionCommitError).recoveryHint).toMatch(/journal/);
      expect(await w.head()).toBe('s3');
      expect(await tree(a.root)).toEqual(aBefore); // nothing applied yet…
      const rep = await w.recover(a); // …until the next command starts
      expect(rep.transactions.map((t) => t.action)).toEqual(['rolled-forward']);
      expect(await tree(a.root)).toEqual(EXPECTED);
      expect(await w.remoteTree()).toEqual(EXPECTED);
      expect((await w.sync(a)).kind).toBe('nothing');
    });

    for (const point of ['client.commit.after-first-op', 'client.commit.before-cleanup']) {
      it(`the client commit breaks mid-apply (${point}) → recovery completes it; nothing lost or duplicated`, async () => {
        process.env['DSG_FAULT'] = `${point}:throw`;
        await expect(w.sync(a)).rejects.toBeInstanceOf(TransactionCommitError);
        delete process.env['DSG_FAULT'];
        expect(await w.head()).toBe('s3');
        await w.recover(a);
        expect(await tree(a.root)).toEqual(EXPECTED);
        expect(Object.values(await backupsOf(a))).toEqual(['k']); // the one local file the apply replaced
        expect((await w.sync(a)).kind).toBe('nothing');
      });
    }

    it('client.rollback fails after a work failure → the original error, a critical log, repository unchanged; recovery cleans up', async () => {
      w.failRemote.add('remote.writeFile');
      await expect(w.sync(a, 'm', { failClient: new Set(['client.rollback']) })).rejects.toThrow(
        'injected failure at remote.writeFile',
      );
      expect(w.logs.filter((l) => l.level === 'critical')).toHaveLength(1);
      expect(w.logs.find((l) => l.level === 'critical')!.m).toContain('Client filesystem rollback failed');
      await expectUntouched();
    });

    it('a failure before the remote commit (tx work) leaves no journal or staging behind', async () => {
      process.env['DSG_FAULT'] = 'sync.before-commit:throw';
      await expect(w.sync(a)).rejects.toThrow(/injected fault/);
      delete process.env['DSG_FAULT'];
      await expectUntouched();
    });
  });
});
