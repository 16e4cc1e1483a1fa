// The CLI's in-process agent picks a host by repository type (connect.ts
// localHost); the ZFS lock then follows the parent dataset's real mountpoint,
// seen here through the built binary.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { teardownDataset, requireZfs } from '@dsg/testenv';
import { localHost } from '../src/connect.js';
import { errorDocSchema } from '../src/output/json-schemas.js';
import { dsg, ok, sandbox, write } from './helpers.js';

const zfs = requireZfs();

describe('localHost: the repository type picks the host', () => {
  it('posix: <root>/<name>/lock; xfs (flat): <root>/.<name>.dsg-lock', async () => {
    expect(await (await localHost({ type: 'posix', root: '/srv/dsg' })).lockFile('proj')).toBe('/srv/dsg/proj/lock');
    expect(await (await localHost({ type: 'posix', root: '/srv/dsg', flat: true })).lockFile('proj')).toBe(
      '/srv/dsg/.proj.dsg-lock',
    );
  });
});

describe.skipIf(!zfs)('dsg on this machine, a ZFS parent mounted somewhere other than --repo-path (real pool)', () => {
  let dataset: string;
  let real: string;
  let configured: string;
  let base: string;
  beforeEach(() => {
    const name = `cli-host-${randomBytes(4).toString('hex')}`;
    dataset = `${zfs!.pool}/${name}`;
    base = mkdtempSync(path.join(os.tmpdir(), 'dsg-cli-mnt-'));
    real = path.join(base, 'real');
    execFileSync('zfs', ['create', '-o', `mountpoint=${real}`, dataset]);
    configured = path.join(zfs!.mount, name);
  });
  afterEach(() => {
    teardownDataset(dataset);
    rmSync(base, { recursive: true, force: true });
    rmSync(configured, { recursive: true, force: true }); // only there if a lock went to the configured path (a failure)
  });

  it('init and sync work, and a lock held in the real mountpoint stops a sync (exit 4, LOCKED)', async () => {
    expect(await (await localHost({ type: 'zfs', pool: dataset, mountpoint: configured })).lockFile('m')).toBe(
      path.join(real, '.m.dsg-lock'),
    );
    const sb = sandbox();
    const dir = path.join(sb.dir, 'p');
    write(path.join(dir, 'input', 'a.csv'), 'a\n');
    ok(
      dsg(
        dir,
        sb.env,
        'init',
        '--host',
        'localhost',
        '--repo-type',
        'zfs',
        '--pool',
        dataset,
        '--repo-path',
        configured,
        '--repo-name',
        'm',
      ),
    );
    write(path.join(dir, 'input', 'a.csv'), 'changed\n');
    const lock = path.join(real, '.m.dsg-lock');
    writeFileSync(
      lock,
      JSON.stringify({
        holder: { user: 'carl@example.org', host: os.hostname(), pid: process.pid, since: '2026-01-01T00:00:00Z' },
        agent: { host: os.hostname(), pid: process.pid, session: 'test' },
      }) + '\n',
    );
    const locked = dsg(dir, sb.env, '--json', 'sync');
    expect(locked.code).toBe(4);
    expect(errorDocSchema.parse(JSON.parse(locked.stdout)).error.code).toBe('LOCKED');
    unlinkSync(lock);
    ok(dsg(dir, sb.env, 'sync'));
    expect(
      execFileSync('zfs', ['list', '-H', '-o', 'name', '-t', 'snapshot', '-r', `${dataset}/m`], { encoding: 'utf8' })
        .trim()
        .split('\n'),
    ).toEqual([`${dataset}/m@s1`, `${dataset}/m@s2`]);
    expect(existsSync(lock)).toBe(false);
    expect(existsSync(configured)).toBe(false);
  });
});
