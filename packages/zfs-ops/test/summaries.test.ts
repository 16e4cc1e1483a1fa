import { execFileSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { freshParent, requireZfs, type TestParent } from '@dsg/testenv';
import { REPLICA_PROP, repositorySummaries, zfsHost } from '../src/index.js';
import { testHasher } from './helpers.js';

const env = requireZfs();
const zfs = (...args: string[]): string => execFileSync('zfs', args, { encoding: 'utf8' });

describe.skipIf(!env)('repositorySummaries on the real pool', () => {
  let p: TestParent;
  afterAll(() => p?.destroy());

  it('gives each repository its newest @sN (by number) and replica marker; leftovers are not repositories', async () => {
    p = freshParent(env!, 'summ');
    // a replica at s10 (s9 < s10 by number, not by text), a primary at s1, an empty one
    zfs('create', `${p.dataset}/rep`);
    for (const s of ['s1', 's9', 's10']) zfs('snapshot', `${p.dataset}/rep@${s}`);
    zfs('set', `${REPLICA_PROP}=primary.example:tank/dsg/rep`, `${p.dataset}/rep`);
    zfs('create', `${p.dataset}/prim`);
    zfs('snapshot', `${p.dataset}/prim@s1`);
    // a transaction's temporary snapshot and clone: neither a head nor a repository
    zfs('snapshot', `${p.dataset}/prim@sync-temp-x`);
    zfs('clone', `${p.dataset}/prim@sync-temp-x`, `${p.dataset}/prim-sync-20261203T000000000Z-0123abcd`);
    zfs('create', `${p.dataset}/empty`);
    // a dataset below a repository is no repository either
    zfs('create', `${p.dataset}/prim/deeper`);
    const expected = [
      { name: 'empty', head: null, replicaOf: null },
      { name: 'prim', head: 's1', replicaOf: null },
      { name: 'rep', head: 's10', replicaOf: 'primary.example:tank/dsg/rep' },
    ];
    expect(await repositorySummaries({ parent: p.dataset })).toEqual(expected);
    // the host answers the same, and lists the same names
    const host = zfsHost({ parent: p.dataset, mountpoint: p.mountpoint, hasher: testHasher });
    expect(await host.summaries()).toEqual(expected);
    expect((await host.summaries()).map((s) => s.name)).toEqual(await host.list());
  });

  it('refuses a bad parent name before running anything', async () => {
    await expect(repositorySummaries({ parent: 'pool/../x' })).rejects.toThrow(/dataset name/);
  });
});
