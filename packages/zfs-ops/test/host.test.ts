// zfsHost on the real zfs-fuse pool: the backend, the listing, and the lock
// file in the directory ZFS really mounts the parent dataset at.
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DsgError, ValidationError, ZfsOperationError } from '@dsg/contracts';
import { teardownDataset, freshParent, requireZfs, zfsRetry, type TestParent } from '@dsg/testenv';
import { createZfsRunner, ZfsRemoteFilesystem, zfsHost, zfsLockFileName, type ZfsRunner } from '../src/index.js';
import { bytes, hashOf, info, readAll, recordingRunner, testHasher, tx } from './helpers.js';

const env = requireZfs();

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) c();
});

/** A parent dataset with an explicit mountpoint outside the pool's tree (`-o mountpoint=`), and the path a config would assume for it. */
function parentElsewhere(): { dataset: string; real: string; configured: string } {
  const name = `host-${randomBytes(4).toString('hex')}`;
  const dataset = `${env!.pool}/${name}`;
  const base = mkdtempSync(path.join(os.tmpdir(), 'dsg-host-mnt-'));
  const real = path.join(base, 'elsewhere');
  execFileSync('zfs', ['create', '-o', `mountpoint=${real}`, dataset]);
  cleanups.push(() => rmSync(base, { recursive: true, force: true }));
  cleanups.push(() => teardownDataset(dataset));
  return { dataset, real, configured: path.join(env!.mount, name) };
}

function fresh(): TestParent {
  const p = freshParent(env!, 'host');
  cleanups.push(() => p.destroy());
  return p;
}

/** init (or sync) of one file through a host's backend. */
async function commit(fs: ZfsRemoteFilesystem, n: number, content: string): Promise<void> {
  const t = tx();
  await fs.begin(t);
  await fs.writeFile(t, 'data/f.txt', bytes(content), { hash: hashOf(content), size: Buffer.byteLength(content) });
  await fs.commit(t, info(n));
}

describe('zfsHost: names and configuration (no zfs run)', () => {
  it('refuses a bad parent, a relative mountpoint and a name that is not a repository, before running zfs', async () => {
    const runner = recordingRunner();
    expect(() => zfsHost({ parent: '-r', mountpoint: '/x', hasher: testHasher, runner })).toThrow(ValidationError);
    expect(() => zfsHost({ parent: 'pool/a b', mountpoint: '/x', hasher: testHasher, runner })).toThrow(
      ValidationError,
    );
    expect(() => zfsHost({ parent: 'pool/p', mountpoint: 'rel', hasher: testHasher, runner })).toThrow(DsgError);
    const host = zfsHost({ parent: 'pool/p', mountpoint: '/x', hasher: testHasher, runner });
    for (const bad of ['', '..', '../x', 'a/b', '-r', 'p-sync-1', 'p-view-s1']) {
      expect(() => host.open(bad), bad).toThrow(ValidationError);
      await expect(host.lockFile(bad), bad).rejects.toBeInstanceOf(ValidationError);
    }
    expect(runner.calls).toEqual([]);
    expect(zfsLockFileName('proj')).toBe('.proj.dsg-lock');
  });

  it('asks ZFS through the given runner (sudo -n zfs for a non-root agent); a zfs failure is thrown, never guessed around', async () => {
    const answers = recordingRunner((args) =>
      args[0] === 'get'
        ? { exitCode: 0, stdout: 'mountpoint\t/srv/real\tlocal\nmounted\tyes\t-\n', stderr: '' }
        : { exitCode: 0, stdout: '', stderr: '' },
    );
    const host = zfsHost({ parent: 'tank/dsg', mountpoint: '/tank/dsg', hasher: testHasher, runner: answers });
    expect(await host.lockFile('proj')).toBe('/srv/real/.proj.dsg-lock');
    expect(answers.calls).toEqual([['get', '-H', '-o', 'property,value,source', 'mountpoint,mounted', 'tank/dsg']]);
    const broken = recordingRunner(() => ({ exitCode: 1, stdout: '', stderr: 'failed to connect to the zfs daemon' }));
    const err = await zfsHost({ parent: 'tank/dsg', mountpoint: '/tank/dsg', hasher: testHasher, runner: broken })
      .lockFile('proj')
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ZfsOperationError);
  });
});

describe.skipIf(!env)('zfsHost on the real pool', () => {
  it('a parent mounted where configured: lock beside the datasets, backend, listing without temp siblings', async () => {
    const p = fresh();
    const host = zfsHost({ parent: p.dataset, mountpoint: p.mountpoint, hasher: testHasher });
    expect(await host.lockDir()).toBe(p.mountpoint);
    expect(await host.lockFile('proj')).toBe(path.join(p.mountpoint, '.proj.dsg-lock'));
    expect(await host.list()).toEqual([]);
    const fs = host.open('proj');
    expect(fs).toBeInstanceOf(ZfsRemoteFilesystem);
    await commit(fs, 1, 'first');
    await fs.begin(tx()); // a sync left open: its temp sibling is no repository
    expect(await host.list()).toEqual(['proj']);
    await fs.recover();
    expect(await readAll(await host.open('proj').readFile('data/f.txt'))).toBe('first');
  });

  it('a parent mounted somewhere else than configured: the lock file is in its real mountpoint, and the repository works', async () => {
    const p = parentElsewhere();
    const host = zfsHost({ parent: p.dataset, mountpoint: p.configured, hasher: testHasher });
    expect(await host.lockDir()).toBe(p.real);
    expect(await host.lockFile('proj')).toBe(path.join(p.real, '.proj.dsg-lock'));
    const fs = host.open('proj');
    await commit(fs, 1, 'first');
    await commit(host.open('proj'), 2, 'second');
    expect(existsSync(path.join(p.real, 'proj', 'data', 'f.txt'))).toBe(true);
    expect(existsSync(p.configured)).toBe(false);
    expect(await host.list()).toEqual(['proj']);
    expect((await host.open('proj').listSnapshots()).map((s) => s.snapshotId)).toEqual(['s1', 's2']);
  });

  it("a reader's session costs three zfs calls (lock directory, recovery look, head), answers right, and is asked once", async () => {
    const p = fresh();
    await commit(zfsHost({ parent: p.dataset, mountpoint: p.mountpoint, hasher: testHasher }).open('proj'), 1, 'one');
    const real = createZfsRunner();
    const calls: string[][] = [];
    const counting: ZfsRunner = { argv: (a) => real.argv(a), run: (a) => (calls.push([...a]), real.run(a)) };
    const host = zfsHost({ parent: p.dataset, mountpoint: p.mountpoint, hasher: testHasher, runner: counting });
    // what the agent does for status: the lock file, recovery at open, the history, the head's files
    expect(await host.lockFile('proj')).toBe(path.join(p.mountpoint, '.proj.dsg-lock'));
    const fs = host.open('proj');
    expect(await fs.recover()).toEqual({ removed: [], leftovers: [], transactions: [] });
    expect((await fs.listSnapshots()).map((s) => s.snapshotId)).toEqual(['s1']);
    expect(await readAll(await fs.readFile('data/f.txt'))).toBe('one');
    expect(await host.lockDir()).toBe(p.mountpoint);
    expect(calls.map((c) => c.slice(0, 2).join(' '))).toEqual(['get -H', 'list -H', 'get -H']);
  });

  it("recovery removes a dead reader's snapshot view, from the same listing, and keeps a live one", async () => {
    const p = fresh();
    const host = zfsHost({ parent: p.dataset, mountpoint: p.mountpoint, hasher: testHasher });
    await commit(host.open('proj'), 1, 'one');
    // a reader killed mid-read left its view clone (dsg:view=read.<pid>); a live reader's stays
    const dead = spawnSync('true').pid;
    const view = (pid: number): string => {
      const name = `${p.dataset}/proj-view-s1-${randomBytes(4).toString('hex')}`;
      execFileSync('zfs', ['clone', '-o', 'readonly=on', '-o', `dsg:view=read.${pid}`, `${p.dataset}/proj@s1`, name]);
      return name;
    };
    const gone = view(dead);
    const kept = view(process.pid);
    const other = `${p.dataset}/proj-viewer`; // another repository whose name starts the same: not a view
    execFileSync('zfs', ['create', '-o', `dsg:view=read.${dead}`, other]);
    const r = await host.open('proj').recover();
    expect(r.removed).toEqual([gone]);
    const names = execFileSync('zfs', ['list', '-H', '-o', 'name', '-r', p.dataset], { encoding: 'utf8' });
    expect(names).not.toContain(gone);
    expect(names).toContain(kept);
    expect(names).toContain(other);
    zfsRetry('destroy', kept); // busy for a moment after its mount
  });

  it('falls back to the configured mountpoint only when ZFS gives no path (mountpoint=none) or there is no parent', async () => {
    const p = fresh();
    execFileSync('zfs', ['set', 'mountpoint=none', p.dataset]);
    const configured = mkdtempSync(path.join(os.tmpdir(), 'dsg-host-conf-'));
    cleanups.push(() => rmSync(configured, { recursive: true, force: true }));
    expect(await zfsHost({ parent: p.dataset, mountpoint: configured, hasher: testHasher }).lockFile('proj')).toBe(
      path.join(configured, '.proj.dsg-lock'),
    );
    const missing = `${env!.pool}/no-such-parent-${randomBytes(4).toString('hex')}`;
    const host = zfsHost({ parent: missing, mountpoint: configured, hasher: testHasher });
    expect(await host.lockFile('proj')).toBe(path.join(configured, '.proj.dsg-lock'));
    expect(readdirSync(configured)).toEqual([]);
  });

  it('a parent that is not mounted (canmount=off) still places the lock where its mountpoint property says', async () => {
    const p = fresh();
    execFileSync('zfs', ['set', 'canmount=off', p.dataset]); // unmounts it
    expect(execFileSync('zfs', ['get', '-H', '-o', 'value', 'mounted', p.dataset], { encoding: 'utf8' }).trim()).toBe(
      'no',
    );
    const host = zfsHost({ parent: p.dataset, mountpoint: '/nonexistent/configured', hasher: testHasher });
    expect(await host.lockFile('proj')).toBe(path.join(p.mountpoint, '.proj.dsg-lock'));
  });
});
