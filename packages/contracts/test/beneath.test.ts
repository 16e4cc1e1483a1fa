import { lstat, mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  assertLinkTargetOnDisk,
  mkdirsBeneath,
  Mutex,
  ProvenDirs,
  removeCreated,
  resolveBeneath,
  ValidationError,
} from '../src/index.js';

let base: string;
let tree: string;
let outside: string;
beforeEach(async () => {
  base = await mkdtemp(path.join(tmpdir(), 'dsg-beneath-'));
  tree = path.join(base, 'tree');
  outside = path.join(base, 'outside');
  await mkdir(tree);
  await mkdir(outside);
  await mkdir(path.join(tree, 'd'));
  await writeFile(path.join(tree, 'file'), 'x');
  await symlink(outside, path.join(tree, 'out'));
  await symlink('d', path.join(tree, 'in'));
});
afterEach(async () => {
  await rm(base, { recursive: true, force: true });
});

describe('mkdirsBeneath', () => {
  it('creates the missing parents one by one and returns them, outermost first', async () => {
    const created = await mkdirsBeneath(tree, 'd/a/b/f');
    expect(created).toEqual([path.join(tree, 'd/a'), path.join(tree, 'd/a/b')]);
    expect((await lstat(path.join(tree, 'd/a/b'))).isDirectory()).toBe(true);
    expect(await mkdirsBeneath(tree, 'd/a/b/g')).toEqual([]); // all there now
    expect(await mkdirsBeneath(tree, 'top')).toEqual([]); // no parent to make
  });

  it('takes the mode (before the umask)', async () => {
    const [dir] = await mkdirsBeneath(tree, 'm/f', 0o700);
    expect((await lstat(dir!)).mode & 0o777).toBe(0o700);
  });

  it.each([
    ['out/x/f', '"out" is a symlink'],
    ['in/x/f', '"in" is a symlink'], // even a link pointing inside
    ['file/x/f', '"file" is not a directory'],
    ['d/../f', '".." component'],
    [`d/${'n'.repeat(256)}/f`, 'longer than 255 bytes'],
  ])('%s is refused (%s) and nothing is created', async (rel, why) => {
    await expect(mkdirsBeneath(tree, rel)).rejects.toThrow(why);
    await expect(mkdirsBeneath(tree, rel)).rejects.toBeInstanceOf(ValidationError);
    expect(await readdir(outside)).toEqual([]);
    expect((await readdir(path.join(tree, 'd'))).sort()).toEqual([]);
  });
});

describe('removeCreated', () => {
  it('removes what mkdirsBeneath made, deepest first, and stops at a directory still in use', async () => {
    const created = await mkdirsBeneath(tree, 'd/a/b/c/f');
    await writeFile(path.join(tree, 'd/a/keep'), 'k');
    await removeCreated(tree, created);
    expect(await readdir(path.join(tree, 'd/a'))).toEqual(['keep']);
    await rm(path.join(tree, 'd/a/keep'));
    await removeCreated(tree, created); // d/a/b/c is gone already: it stops there
    expect(await readdir(path.join(tree, 'd'))).toEqual(['a']);
    await removeCreated(tree, created.slice(0, 1));
    expect(await readdir(path.join(tree, 'd'))).toEqual([]);
  });

  it('never removes through a link planted since, and never throws', async () => {
    await mkdir(path.join(outside, 'x'));
    await expect(removeCreated(tree, [path.join(tree, 'out/x')])).resolves.toBeUndefined();
    expect(await readdir(outside)).toEqual(['x']);
  });
});

describe('assertLinkTargetOnDisk', () => {
  it.each([
    ['l', 'd/x'],
    ['d/l', '../file'], // the final component may be a file
    ['l', 'in'], // or a link
    ['d/l', 'not/yet/there'],
  ])('%s -> %s is fine', async (rel, target) => {
    await expect(assertLinkTargetOnDisk(tree, rel, target)).resolves.toBeUndefined();
  });

  it.each([
    ['l', 'in/x', '"in" is a symlink'],
    ['d/l', '../out/etc/passwd', '"out" is a symlink'],
    ['l', 'file/x', '"file" is not a directory'],
  ])('%s -> %s is refused, naming the link (%s)', async (rel, target, why) => {
    const e = await assertLinkTargetOnDisk(tree, rel, target).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ValidationError);
    expect((e as Error).message).toMatch(new RegExp(`^refused link "${rel}" -> "${target}": on disk, `));
    expect((e as Error).message).toContain(why);
  });
});

describe('ProvenDirs: proofs of shared holders, forgotten once an exclusive holder is granted', () => {
  it('keeps what shared holders proved, and forgets it all when an exclusive holder is granted', async () => {
    const m = new Mutex();
    const proven = new ProvenDirs(m);
    await m.runShared(async () => {
      await resolveBeneath(tree, 'd/x/f', proven); // d exists, d/x does not
    });
    await m.runShared(() => Promise.resolve());
    expect(proven.has(path.join(tree, 'd'))).toBe(true);
    expect(proven.has(path.join(tree, 'd/x'))).toBe(false); // missing is no proof
    expect(proven.size).toBe(1);
    await m.run(() => Promise.resolve());
    expect(proven.has(path.join(tree, 'd'))).toBe(false);
    expect(proven.size).toBe(0);
  });

  it('mkdirsBeneath records the parents it found and the ones it made', async () => {
    const m = new Mutex();
    const proven = new ProvenDirs(m);
    await m.runShared(async () => {
      expect(await mkdirsBeneath(tree, 'd/a/b/f', undefined, proven)).toEqual([
        path.join(tree, 'd/a'),
        path.join(tree, 'd/a/b'),
      ]);
    });
    expect(['d', 'd/a', 'd/a/b'].map((d) => proven.has(path.join(tree, d)))).toEqual([true, true, true]);
    expect(proven.size).toBe(3);
  });

  it('the checks that need no lstat still run for proved parents', async () => {
    const m = new Mutex();
    const proven = new ProvenDirs(m);
    await m.runShared(async () => {
      await resolveBeneath(tree, 'd/f', proven);
      for (const run of [
        (rel: string) => resolveBeneath(tree, rel, proven),
        (rel: string) => mkdirsBeneath(tree, rel, undefined, proven),
      ]) {
        await expect(run(`d/${'n'.repeat(256)}/f`)).rejects.toThrow('longer than 255 bytes');
        await expect(run('d/../f')).rejects.toThrow('".." component');
      }
    });
    expect(proven.has(path.join(tree, 'd'))).toBe(true);
  });

  it('is bounded: past MAX_PROVEN entries it starts over', () => {
    const proven = new ProvenDirs(new Mutex());
    for (let i = 0; i < ProvenDirs.MAX_PROVEN; i++) proven.add(`/p/${i}`);
    expect(proven.size).toBe(ProvenDirs.MAX_PROVEN);
    proven.add('/p/last');
    expect(proven.size).toBe(1);
    expect(proven.has('/p/last')).toBe(true);
  });

  // The invalidation rule, shown by breaking it: a directory replaced by a link WITHOUT
  // taking the Mutex alone (what only an exclusive holder may do) is not seen while the
  // proof stands — which shows the proof is used instead of an lstat — and is refused
  // as soon as an exclusive holder has been granted the Mutex.
  it('invalidation rule: resolveBeneath trusts a proof until an exclusive holder runs, then lstats again', async () => {
    const m = new Mutex();
    const proven = new ProvenDirs(m);
    await mkdir(path.join(tree, 'd/a'));
    await m.runShared(() => resolveBeneath(tree, 'd/a/f', proven));
    await rm(path.join(tree, 'd/a'), { recursive: true });
    await symlink(outside, path.join(tree, 'd/a'));
    await expect(m.runShared(() => resolveBeneath(tree, 'd/a/f', proven))).resolves.toBe(path.join(tree, 'd/a/f'));
    await expect(resolveBeneath(tree, 'd/a/f')).rejects.toThrow('"d/a" is a symlink'); // without the proofs
    await m.run(() => Promise.resolve());
    await expect(m.runShared(() => resolveBeneath(tree, 'd/a/f', proven))).rejects.toThrow('"d/a" is a symlink');
  });

  it('invalidation rule: mkdirsBeneath trusts a proof until an exclusive holder runs, then lstats again', async () => {
    const m = new Mutex();
    const proven = new ProvenDirs(m);
    await m.runShared(() => mkdirsBeneath(tree, 'd/a/f', undefined, proven));
    await rm(path.join(tree, 'd/a'), { recursive: true });
    await symlink(outside, path.join(tree, 'd/a'));
    // the stale proof is trusted: this mkdir goes through the link (why the rule matters)
    await m.runShared(() => mkdirsBeneath(tree, 'd/a/b/f', undefined, proven));
    expect(await readdir(outside)).toEqual(['b']);
    await m.run(() => rm(path.join(outside, 'b'), { recursive: true }));
    await expect(m.runShared(() => mkdirsBeneath(tree, 'd/a/c/f', undefined, proven))).rejects.toThrow(
      '"d/a" is a symlink',
    );
    expect(await readdir(outside)).toEqual([]);
  });
});
