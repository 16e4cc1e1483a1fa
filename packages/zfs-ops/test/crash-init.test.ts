import { afterEach, describe, expect, it } from 'vitest';
import { freshParent, requireZfs, type TestParent } from '@dsg/testenv';
import { ZfsRemoteFilesystem } from '../src/index.js';
import { expectEndState, runChild } from './crash.js';
import { testHasher } from './helpers.js';

const env = requireZfs();

/** Each commit step of the init pattern: before the rename → no repository; after → s1. */
const steps: [string, 'none' | 'new'][] = [
  ['zfs.init.before-unmount', 'none'],
  ['zfs.init.after-unmount', 'none'],
  ['zfs.init.after-rename', 'new'],
  ['zfs.init.after-mount', 'new'],
  ['zfs.init.after-snapshot', 'new'],
];

describe.skipIf(!env)('crash matrix: init pattern killed at each commit step, then recover()', () => {
  const parents: TestParent[] = [];
  afterEach(() => {
    while (parents.length) parents.pop()!.destroy();
  });

  it.each(steps)('killed at %s → recover() ends at %s', async (fault, expected) => {
    const p = freshParent(env!, 'zcrash');
    parents.push(p);
    const r = await runChild(p, 's1', { 'a.txt': 'v1', 'd/e.txt': 'deep' }, fault);
    expect(r.signal, r.out).toBe('SIGKILL');
    const rep = await new ZfsRemoteFilesystem({
      parent: p.dataset,
      repo: 'repo',
      mountpoint: p.mountpoint,
      hasher: testHasher,
    }).recover();
    expect(rep.leftovers).toEqual([]);
    expect(rep.transactions.map((x) => x.action)).toEqual([expected === 'new' ? 'rolled-forward' : 'rolled-back']);
    if (expected === 'new') await expectEndState(p, ['s1'], { 'a.txt': 'v1', 'd/e.txt': 'deep' });
    else await expectEndState(p, [], null);
  });

  it('without a fault the child commits (the fixture itself works)', async () => {
    const p = freshParent(env!, 'zcrash');
    parents.push(p);
    const r = await runChild(p, 's1', { 'a.txt': 'v1' }, 'none');
    expect(r.code, r.out).toBe(0);
    expect(r.out).toContain('committed');
    await expectEndState(p, ['s1'], { 'a.txt': 'v1' });
  });
});
