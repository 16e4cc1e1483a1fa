import { afterEach, describe, expect, it } from 'vitest';
import { freshParent, requireZfs, type TestParent } from '@dsg/testenv';
import { ZfsRemoteFilesystem } from '../src/index.js';
import { expectEndState, runChild } from './crash.js';
import { bytes, hashOf, info, testHasher, tx } from './helpers.js';

const env = requireZfs();

/** Each commit step of the sync pattern, and where recovery must land (before promote → old, after → new). */
const steps: [string, 'old' | 'new'][] = [
  ['zfs.sync.before-unmount', 'old'],
  ['zfs.sync.after-unmount', 'old'],
  ['zfs.sync.after-promote', 'new'],
  ['zfs.sync.after-rename-old', 'new'], // P/repo is missing here
  ['zfs.sync.after-rename-new', 'new'],
  ['zfs.sync.after-mount', 'new'],
  ['zfs.sync.after-snapshot', 'new'],
  ['zfs.sync.after-destroy-old', 'new'],
  ['zfs.sync.after-destroy-temp', 'new'],
];

describe.skipIf(!env)('crash matrix: sync pattern killed at each commit step, then recover()', () => {
  const parents: TestParent[] = [];
  afterEach(() => {
    while (parents.length) parents.pop()!.destroy();
  });

  it.each(steps)('killed at %s → recover() ends at the %s snapshot', async (fault, expected) => {
    const p = freshParent(env!, 'zcrash');
    parents.push(p);
    const fs = new ZfsRemoteFilesystem({
      parent: p.dataset,
      repo: 'repo',
      mountpoint: p.mountpoint,
      hasher: testHasher,
    });
    const t = tx();
    await fs.begin(t);
    await fs.writeFile(t, 'a.txt', bytes('v1'), { hash: hashOf('v1') });
    await fs.commit(t, info(1));

    const r = await runChild(p, 's2', { 'a.txt': 'v2', 'b.txt': 'new' }, fault);
    expect(r.signal, r.out).toBe('SIGKILL');
    if (fault === 'zfs.sync.after-rename-old') {
      const { listAll } = await import('@dsg/testenv');
      expect(listAll(p.dataset)).not.toContain(`${p.dataset}/repo`);
    }

    const rep = await new ZfsRemoteFilesystem({
      parent: p.dataset,
      repo: 'repo',
      mountpoint: p.mountpoint,
      hasher: testHasher,
    }).recover();
    expect(rep.leftovers).toEqual([]);
    expect(rep.transactions).toHaveLength(1);
    expect(rep.transactions[0]!.action).toBe(expected === 'new' ? 'rolled-forward' : 'rolled-back');
    if (expected === 'new') await expectEndState(p, ['s1', 's2'], { 'a.txt': 'v2', 'b.txt': 'new' });
    else await expectEndState(p, ['s1'], { 'a.txt': 'v1' });
  });

  it('recover() on a clean repository does nothing', async () => {
    const p = freshParent(env!, 'zcrash');
    parents.push(p);
    const fs = new ZfsRemoteFilesystem({
      parent: p.dataset,
      repo: 'repo',
      mountpoint: p.mountpoint,
      hasher: testHasher,
    });
    expect(await fs.recover()).toEqual({ removed: [], leftovers: [], transactions: [] });
  });
});

describe.skipIf(!env)('crash during a rollback after promote', () => {
  const parents: TestParent[] = [];
  afterEach(() => {
    while (parents.length) parents.pop()!.destroy();
  });

  it.each(['zfs.rollback.marked', 'zfs.rollback.after-promote'])(
    'killed at %s → recover() finishes the rollback (old snapshot), not a roll-forward',
    async (fault) => {
      const { zfsRetry } = await import('@dsg/testenv');
      const p = freshParent(env!, 'zcrash');
      parents.push(p);
      const fs = new ZfsRemoteFilesystem({
        parent: p.dataset,
        repo: 'repo',
        mountpoint: p.mountpoint,
        hasher: testHasher,
      });
      const t0 = tx();
      await fs.begin(t0);
      await fs.writeFile(t0, 'a.txt', bytes('v1'), { hash: hashOf('v1') });
      await fs.commit(t0, info(1));
      // make the rename after promote fail for real, so the child's commit fails and it rolls back
      const t = tx();
      zfsRetry('create', `${p.dataset}/repo-old-${t}`);
      const r = await runChild(p, 's2', { 'a.txt': 'v2' }, fault, t);
      expect(r.signal, r.out).toBe('SIGKILL');
      expect(r.out).toContain('commit failed');
      // remove the obstacle: a roll-forward would now succeed, so only dsg:phase=rolling-back keeps recovery on the rollback
      zfsRetry('destroy', `${p.dataset}/repo-old-${t}`);
      const rep = await new ZfsRemoteFilesystem({
        parent: p.dataset,
        repo: 'repo',
        mountpoint: p.mountpoint,
        hasher: testHasher,
      }).recover();
      expect(rep.transactions).toEqual([{ transactionId: t, action: 'rolled-back' }]);
      expect(rep.leftovers).toEqual([]);
      await expectEndState(p, ['s1'], { 'a.txt': 'v1' });
    },
  );
});
