// A rollback on a full pool: `zfs set` fails with "out of space" where
// `zfs destroy` still works (ZFS keeps slop space for frees). The
// rolling-back mark is only a hint for a recovery after a crash; failing to
// set it must not make a rollback that removed everything "incomplete".
// Found by the disk-full test (a 64 MiB pool over ssh) in CI.
import { afterEach, describe, expect, it } from 'vitest';
import { freshParent, listAll, requireZfs, type TestParent } from '@dsg/testenv';
import { createZfsRunner, ZfsRemoteFilesystem, type ZfsRunner } from '../src/index.js';
import { bytes, hashOf, info, state, testHasher, tx } from './helpers.js';

const env = requireZfs();

/** The real runner, but `zfs set` (and, with `destroyToo`, `zfs destroy`) of the sync clone fails as on a full pool. */
function fullPoolRunner(destroyToo = false): ZfsRunner {
  const real = createZfsRunner();
  const full = (args: readonly string[]): boolean =>
    args.some((a) => a.includes('-sync-')) && (args[0] === 'set' || (destroyToo && args[0] === 'destroy'));
  return {
    ...real,
    run: (args) =>
      full(args)
        ? Promise.resolve({ exitCode: 1, stdout: '', stderr: `cannot ${args[0]} '${args.at(-1)}': out of space\n` })
        : real.run(args),
  };
}

describe.skipIf(!env)('rollback on a full pool', () => {
  const parents: TestParent[] = [];
  afterEach(() => {
    while (parents.length) parents.pop()!.destroy();
  });

  async function openSync(runner: ZfsRunner) {
    const p = freshParent(env!, 'zfull');
    parents.push(p);
    const opts = { parent: p.dataset, repo: 'repo', mountpoint: p.mountpoint, hasher: testHasher };
    const setup = new ZfsRemoteFilesystem(opts);
    const t1 = tx();
    await setup.begin(t1);
    await setup.writeFile(t1, 'a.txt', bytes('v1'), { hash: hashOf('v1') });
    await setup.commit(t1, info(1));
    const before = state(p);
    const fs = new ZfsRemoteFilesystem({ ...opts, runner });
    const t = tx();
    await fs.begin(t);
    await fs.writeFile(t, 'a.txt', bytes('v2'), { hash: hashOf('v2') });
    return { p, fs, t, before };
  }

  it('the mark cannot be set, the clone is destroyed: complete, the repository as before', async () => {
    const { p, fs, t, before } = await openSync(fullPoolRunner());
    const r = await fs.rollback(t);
    expect(r.leftovers).toEqual([]);
    expect(state(p)).toEqual(before);
    expect(listAll(p.dataset).join('\n')).not.toMatch(/-sync-|sync-temp/);
  });

  it('the clone cannot be destroyed either: incomplete, naming the mark and the clone', async () => {
    const { p, fs, t } = await openSync(fullPoolRunner(true));
    const r = await fs.rollback(t);
    expect(r.leftovers.map((l) => l.name)).toEqual([
      `${p.dataset}/repo-sync-${t} dsg:phase=rolling-back`,
      `${p.dataset}/repo-sync-${t}`,
      `${p.dataset}/repo@sync-temp-${t}`, // the clone still depends on it
    ]);
    expect(r.leftovers.slice(0, 2).every((l) => /out of space/.test(l.error))).toBe(true);
    // a recovery with room again ends at the old head
    const again = new ZfsRemoteFilesystem({
      parent: p.dataset,
      repo: 'repo',
      mountpoint: p.mountpoint,
      hasher: testHasher,
    });
    await again.recover();
    expect(listAll(p.dataset).join('\n')).not.toMatch(/-sync-|sync-temp/);
    expect((await again.listSnapshots()).map((s) => s.snapshotId)).toEqual(['s1']);
  });
});
