import { describe, expect, it } from 'vitest';
import { ValidationError, ZfsOperationError, newTransactionId } from '@dsg/contracts';
import {
  Zfs,
  ZfsRemoteFilesystem,
  ZfsOperations,
  listZfsRepositories,
  assertDatasetName,
  isRepositoryName,
} from '../src/index.js';
import { decodePropValue, encodePropValue } from '../src/names.js';
import { bytes, recordingRunner, testHasher } from './helpers.js';

const hostileDatasets = [
  '',
  '-r',
  'pool/-rf',
  'pool/../etc',
  'pool/a b',
  'pool/a;rm -rf /',
  'pool//a',
  '/pool',
  'pool/a\nb',
  'pool/$(id)',
  'pool/a@b@c',
  'pool/a\0',
  '9pool/a',
  'pool/' + 'x'.repeat(300),
];
const hostileRepos = [
  '..',
  '.',
  '-r',
  'a/b',
  'a b',
  'r-old-x',
  'x-sync-1',
  'x-init-2',
  'x-view-3',
  '',
  'a;b',
  '$x',
  'a\0',
];
const hostilePaths = ['../x', '/etc/passwd', 'a/../../x', 'a\0b', 'a\\b', '', './a', 'a//b', 'C:', 'C:/x'];

describe('names are validated before any zfs call', () => {
  it.each(hostileDatasets)('Zfs refuses dataset %j without running zfs', async (name) => {
    const r = recordingRunner();
    const zfs = new Zfs({ runner: r });
    await expect(zfs.create(name)).rejects.toBeInstanceOf(ValidationError);
    await expect(zfs.destroy(name, { recursive: true })).rejects.toBeInstanceOf(ValidationError);
    await expect(zfs.rename('pool/a', name)).rejects.toBeInstanceOf(ValidationError);
    await expect(zfs.list([name], ['name'])).rejects.toBeInstanceOf(ValidationError);
    await expect(zfs.mountInfo(name)).rejects.toBeInstanceOf(ValidationError);
    expect(r.calls).toEqual([]);
  });

  it('refuses hostile snapshot names, property names and values', async () => {
    const r = recordingRunner();
    const zfs = new Zfs({ runner: r });
    for (const s of ['pool/a', 'pool/a@', 'pool/a@-r', 'pool/a@b@c', 'pool/a@b c', '@x'])
      await expect(zfs.snapshot(s)).rejects.toBeInstanceOf(ValidationError);
    await expect(zfs.set('pool/a', { 'mountpoint=/x,dsg:tx': '1' })).rejects.toBeInstanceOf(ValidationError);
    await expect(zfs.set('pool/a', { 'DSG:TX': '1' })).rejects.toBeInstanceOf(ValidationError);
    await expect(zfs.set('pool/a', { sharenfs: 'on' })).rejects.toBeInstanceOf(ValidationError);
    await expect(zfs.set('pool/a', { 'dsg:tx': 'a\tb' })).rejects.toBeInstanceOf(ValidationError);
    await expect(zfs.create('pool/a', { 'dsg:tx': 'x\ny' })).rejects.toBeInstanceOf(ValidationError);
    expect(r.calls).toEqual([]);
  });

  it.each(hostileRepos)('ZfsRemoteFilesystem refuses repository %j at construction', (repo) => {
    const r = recordingRunner();
    expect(
      () => new ZfsRemoteFilesystem({ parent: 'pool/p', repo, mountpoint: '/mnt/p', hasher: testHasher, runner: r }),
    ).toThrow(ValidationError);
    expect(r.calls).toEqual([]);
  });

  it('refuses a hostile parent, and listZfsRepositories with a hostile parent', async () => {
    const r = recordingRunner();
    for (const parent of hostileDatasets) {
      expect(
        () => new ZfsRemoteFilesystem({ parent, repo: 'ok', mountpoint: '/mnt/p', hasher: testHasher, runner: r }),
      ).toThrow(ValidationError);
      await expect(listZfsRepositories({ parent, mountpoint: '/mnt/p', runner: r })).rejects.toBeInstanceOf(
        ValidationError,
      );
    }
    expect(r.calls).toEqual([]);
  });

  it.each(hostilePaths)('refuses repository path %j before any zfs call', async (p) => {
    const r = recordingRunner();
    const fs = new ZfsRemoteFilesystem({
      parent: 'pool/p',
      repo: 'ok',
      mountpoint: '/mnt/p',
      hasher: testHasher,
      runner: r,
    });
    await expect(fs.readFile(p)).rejects.toBeInstanceOf(ValidationError);
    await expect(fs.readSnapshotFile('s1', p)).rejects.toBeInstanceOf(ValidationError);
    const t = newTransactionId();
    await expect(fs.writeFile(t, p, bytes('x'), { hash: '0' })).rejects.toBeInstanceOf(ValidationError);
    await expect(fs.deleteFile(t, p)).rejects.toBeInstanceOf(ValidationError);
    await expect(fs.writeLink(t, p, 'x')).rejects.toBeInstanceOf(ValidationError);
    expect(r.calls).toEqual([]);
  });

  it('refuses hostile snapshot ids and transaction ids before any zfs call', async () => {
    const r = recordingRunner();
    const fs = new ZfsRemoteFilesystem({
      parent: 'pool/p',
      repo: 'ok',
      mountpoint: '/mnt/p',
      hasher: testHasher,
      runner: r,
    });
    for (const id of ['s0', 'x1', 's1@x', 's1 -r', '../s1', 's-1'])
      await expect(fs.readSnapshotFile(id, 'a')).rejects.toBeInstanceOf(ValidationError);
    await expect(fs.mountSnapshot('s1', 'relative/dir')).rejects.toBeInstanceOf(ValidationError);
    const ops = new ZfsOperations({ parent: 'pool/p', repo: 'ok', mountpoint: '/mnt/p', zfs: new Zfs({ runner: r }) });
    await expect(ops.begin('../../x')).rejects.toThrow(/not a transaction id/);
    expect((await ops.rollback('x; rm')).leftovers).toHaveLength(1);
    expect(r.calls).toEqual([]);
  });

  it('accepts ordinary names', () => {
    expect(() => assertDatasetName('dsgtest/t-1a2b/repo_1.x')).not.toThrow();
    expect(isRepositoryName('my-repo.v2')).toBe(true);
  });

  it('round-trips free-text property values', () => {
    for (const v of ['', '-', 'a\tb\nc%d', 'plain text', '100%']) expect(decodePropValue(encodePropValue(v))).toBe(v);
  });
});

describe('where a dataset is mounted is asked from ZFS', () => {
  it('mountInfo runs one `zfs get` and reads mountpoint, its source and mounted', async () => {
    const r = recordingRunner(() => ({
      exitCode: 0,
      stdout: 'mountpoint\t/srv/legacy/proj\tlocal\nmounted\tyes\t-\n',
      stderr: '',
    }));
    expect(await new Zfs({ runner: r }).mountInfo('tank/proj')).toEqual({
      mountpoint: '/srv/legacy/proj',
      source: 'local',
      mounted: true,
    });
    expect(r.calls).toEqual([['get', '-H', '-o', 'property,value,source', 'mountpoint,mounted', 'tank/proj']]);
    const inherited = recordingRunner(() => ({
      exitCode: 0,
      stdout: 'mountpoint\t/tank/proj\tinherited from tank\nmounted\tno\t-\n',
      stderr: '',
    }));
    expect(await new Zfs({ runner: inherited }).mountInfo('tank/proj')).toEqual({
      mountpoint: '/tank/proj',
      source: 'inherited from tank',
      mounted: false,
    });
  });

  it('a repository whose dataset is missing reads as absent; one not mounted at a path is a clear error', async () => {
    const missing = recordingRunner(() => ({
      exitCode: 1,
      stdout: '',
      stderr: "cannot open 'pool/p/ok': dataset does not exist\n",
    }));
    const fs = new ZfsRemoteFilesystem({
      parent: 'pool/p',
      repo: 'ok',
      mountpoint: '/mnt/p',
      hasher: testHasher,
      runner: missing,
    });
    expect(await fs.readFile('a.txt')).toBeNull();
    expect(await fs.listSnapshots()).toEqual([]);
    expect(await fs.exists()).toBe(false);
    expect(await fs.repositoryLayout()).toBeNull();
    const none = recordingRunner((args) =>
      args[0] === 'get' && args.includes('mountpoint,mounted')
        ? { exitCode: 0, stdout: 'mountpoint\tnone\tlocal\nmounted\tno\t-\n', stderr: '' }
        : {
            exitCode: 0,
            // inspect's one `get -r -d 1`: the dataset's mount state with its @sN's properties
            stdout:
              'pool/p/ok\tmountpoint\tnone\tlocal\npool/p/ok\tmounted\tno\t-\npool/p/ok@s1\tcreation\t1700000000\t-\n',
            stderr: '',
          },
    );
    const fs2 = new ZfsRemoteFilesystem({
      parent: 'pool/p',
      repo: 'ok',
      mountpoint: '/mnt/p',
      hasher: testHasher,
      runner: none,
    });
    await expect(fs2.readFile('a.txt')).rejects.toMatchObject({ code: 'ZFS_NOT_MOUNTED' });
    // an @s1 without dsg's properties (the original's): the head can only come from the tree
    await expect(fs2.listSnapshots()).rejects.toMatchObject({ code: 'ZFS_NOT_MOUNTED' });
  });
});

describe('command failures and busy retries', () => {
  it('a failure is a ZfsOperationError with argv, exit code, stderr and a hint', async () => {
    const r = recordingRunner(() => ({
      exitCode: 1,
      stdout: '',
      stderr: "cannot open 'pool/x': dataset does not exist\n",
    }));
    const e = await new Zfs({ runner: r }).destroy('pool/x').catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ZfsOperationError);
    const z = e as ZfsOperationError;
    expect(z.zfsCommand).toEqual(['zfs', 'destroy', 'pool/x']);
    expect(z.exitCode).toBe(1);
    expect(z.stderr).toContain('does not exist');
    expect(z.recoveryHint).toMatch(/zfs list/);
  });

  it('retries busy errors with backoff, then succeeds', async () => {
    let n = 0;
    const r = recordingRunner(() =>
      ++n < 3
        ? { exitCode: 1, stdout: '', stderr: "cannot rename 'a': dataset is busy" }
        : { exitCode: 0, stdout: '', stderr: '' },
    );
    await new Zfs({ runner: r, retry: { baseDelayMs: 5 } }).unmount('pool/a');
    expect(r.calls).toHaveLength(3);
  });

  it('gives up on a persistent busy error within the bound', async () => {
    const r = recordingRunner(() => ({ exitCode: 1, stdout: '', stderr: 'umount: /x: target is busy.' }));
    const e = await new Zfs({ runner: r, retry: { timeoutMs: 200, baseDelayMs: 10, maxDelayMs: 40 } })
      .unmount('pool/a')
      .catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ZfsOperationError);
    expect((e as ZfsOperationError).recoveryHint).toMatch(/fuser/);
    expect(r.calls.length).toBeGreaterThan(2);
    expect(r.calls.length).toBeLessThan(20);
  });

  it('set with retryBusy: false tries once (the head-file record a reader can do without)', async () => {
    const r = recordingRunner(() => ({
      exitCode: 1,
      stdout: '',
      stderr: "cannot set property for 'pool/a': dataset is busy",
    }));
    const e = await new Zfs({ runner: r, retry: { baseDelayMs: 5 } })
      .set('pool/a', { 'dsg:head-file': '1:2:3:4:s1' }, { retryBusy: false })
      .catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ZfsOperationError);
    expect(r.calls).toHaveLength(1);
  });

  it('does not retry other errors', async () => {
    const r = recordingRunner(() => ({ exitCode: 2, stdout: '', stderr: 'internal error' }));
    await expect(new Zfs({ runner: r }).promote('pool/a')).rejects.toBeInstanceOf(ZfsOperationError);
    expect(r.calls).toHaveLength(1);
  });

  it('detection: a failing zfs is an error, never "init"', async () => {
    const r = recordingRunner(() => ({ exitCode: 1, stdout: '', stderr: 'failed to connect to zfs-fuse daemon' }));
    const ops = new ZfsOperations({ parent: 'pool/p', repo: 'ok', mountpoint: '/mnt/p', zfs: new Zfs({ runner: r }) });
    await expect(ops.detect()).rejects.toBeInstanceOf(ZfsOperationError);
    await expect(ops.begin(newTransactionId())).rejects.toBeInstanceOf(ZfsOperationError);
    expect(r.calls.some((c) => c[0] === 'create' || c[0] === 'clone' || c[0] === 'snapshot')).toBe(false);
  });

  it('a rename that reports success but does not show in the listing is an error', async () => {
    const r = recordingRunner((args) =>
      args[0] === 'list'
        ? { exitCode: 1, stdout: '', stderr: "cannot open 'x': dataset does not exist" }
        : { exitCode: 0, stdout: '', stderr: '' },
    );
    await expect(new Zfs({ runner: r }).rename('pool/a', 'pool/b')).rejects.toThrow(/listing shows/);
  });

  it('sudo runner prefixes sudo -n', async () => {
    const { createZfsRunner } = await import('../src/index.js');
    expect(createZfsRunner({ sudo: true }).argv(['list'])).toEqual(['sudo', '-n', 'zfs', 'list']);
    const missing = await createZfsRunner({ zfsPath: '/nonexistent/zfs' }).run(['list']);
    expect(missing.exitCode).not.toBe(0);
  });
});
