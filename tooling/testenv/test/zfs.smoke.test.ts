import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freshParent, listAll, requireSecondPool, requireZfs, zfsRetry, type TestParent } from '../src/index.js';

const zfsEnv = requireZfs();
const pool2 = requireSecondPool();
const zfs = (...args: string[]) => execFileSync('zfs', args, { encoding: 'utf8' });

describe.skipIf(!zfsEnv)('real zfs-fuse pool', () => {
  let parent: TestParent;
  afterAll(() => parent?.destroy());

  it('creates, snapshots, clones, promotes and destroys a dataset', () => {
    parent = freshParent(zfsEnv!, 'smoke');
    const ds = `${parent.dataset}/repo`;
    zfs('create', ds);
    const mnt = zfs('get', '-H', '-o', 'value', 'mountpoint', ds).trim();
    expect(mnt).toBe(path.join(parent.mountpoint, 'repo'));
    writeFileSync(path.join(mnt, 'a.txt'), 'one');
    zfs('snapshot', `${ds}@s1`);
    zfs('clone', '-o', 'dsg:tx=smoke', `${ds}@s1`, `${ds}-clone`);
    expect(zfs('get', '-H', '-o', 'value', 'origin', `${ds}-clone`).trim()).toBe(`${ds}@s1`);
    expect(zfs('get', '-H', '-o', 'value', 'dsg:tx', `${ds}-clone`).trim()).toBe('smoke');
    writeFileSync(path.join(parent.mountpoint, 'repo-clone', 'a.txt'), 'two');
    zfs('promote', `${ds}-clone`);
    // after promote the clone owns the snapshot and the original depends on it
    expect(zfs('get', '-H', '-o', 'value', 'origin', ds).trim()).toBe(`${ds}-clone@s1`);
    expect(readFileSync(path.join(parent.mountpoint, 'repo-clone', 'a.txt'), 'utf8')).toBe('two');
    zfsRetry('destroy', '-r', ds); // busy for a moment after promote on zfs-fuse
    expect(listAll(parent.dataset)).toEqual([parent.dataset, `${ds}-clone`, `${ds}-clone@s1`]);
  });
});

describe.skipIf(!pool2)('the second pool (replication target)', () => {
  it('is a separate pool whose root is not mounted; a dataset there mounts under its mount directory', () => {
    expect(pool2!.pool).not.toBe(zfsEnv?.pool);
    expect(zfs('get', '-H', '-o', 'value', 'canmount', pool2!.pool).trim()).toBe('off');
    const parent = freshParent(pool2!, 'smoke2');
    try {
      expect(parent.mountpoint.startsWith(pool2!.mount + '/')).toBe(true);
      writeFileSync(path.join(parent.mountpoint, 'x'), 'y');
      expect(readFileSync(path.join(parent.mountpoint, 'x'), 'utf8')).toBe('y');
    } finally {
      parent.destroy();
    }
  });
});
