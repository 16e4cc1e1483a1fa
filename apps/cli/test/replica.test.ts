import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freshParent, listAll, requireReplicaSsh, requireSecondPool, requireZfs, type TestParent } from '@dsg/testenv';
import { AGENT, dsg, listing, ok, sandbox, write } from './helpers.js';

const zfs = requireZfs();
const pool2 = requireSecondPool();
// the real sshd; replication goes through the testenv's replication key (zfs-fuse compatibility wrapper)
const ssh = requireReplicaSsh();
const hasSyncoid = spawnSync('syncoid', ['--version']).status === 0;
if (!hasSyncoid) {
  if (process.env['DSG_REQUIRE_REAL'] === '1') throw new Error('DSG_REQUIRE_REAL=1 but syncoid is not installed');
  console.warn('[dsg-testenv] SKIPPING replica tests: syncoid (Debian package sanoid) is not installed');
}

const parents: TestParent[] = [];
afterAll(() => {
  for (const p of parents) p.destroy();
});

const sshArgs = (): string[] => [
  '--port',
  String(ssh!.port),
  '--ssh-user',
  ssh!.user,
  '--agent',
  'node',
  '--agent',
  AGENT,
];

/** The agent on the server, as cron or the systemd timer runs it. */
function agent(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync('node', [AGENT, ...args], { encoding: 'utf8' });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** `dsg-agent replicate` to the second pool over the real sshd, as the replica host root@127.0.0.1. */
const replicateOverSsh = (serverSide: string[], replicas: TestParent): string[] => [
  'replicate',
  ...serverSide,
  '--to',
  `${ssh!.user}@${ssh!.host}:${replicas.dataset}`,
  '--ssh-port',
  String(ssh!.port),
  '--ssh-key',
  ssh!.replicaKey,
  '--ssh-option',
  `UserKnownHostsFile=${ssh!.knownHosts}`,
];

const noMeta = (rel: string): boolean => rel === '.dsg' || rel.startsWith('.dsg/');

describe.skipIf(!zfs || !pool2 || !ssh || !hasSyncoid)('a replica through the built dsg over the real sshd', () => {
  it('clone, status, log, snapfetch and validate-chain from the replica; sync to it refused; failover continues the chain', () => {
    const primary = freshParent(zfs!, 'primary');
    const replicas = freshParent(pool2!, 'replicas');
    parents.push(primary, replicas);
    const sb = sandbox(
      `user_id: ana@example.org\nuser_name: Ana\nssh:\n  key_path: ${ssh!.key}\n  known_hosts: ${ssh!.knownHosts}\n`,
    );
    const name = `rep-${process.pid}`;
    const A = path.join(sb.dir, 'a');
    const B = path.join(sb.dir, 'b');
    const serverSide = ['--type', 'zfs', '--pool', primary.dataset, '--mountpoint', primary.mountpoint];
    const replicaSide = ['--type', 'zfs', '--pool', replicas.dataset, '--mountpoint', replicas.mountpoint];

    // three syncs on the primary, each replicated over ssh
    write(path.join(A, 'input', 'survey.csv'), 'id\n1\n');
    write(path.join(A, 'output', 'r.txt'), 'v1\n');
    ok(
      dsg(
        A,
        sb.env,
        'init',
        '--host',
        ssh!.host,
        '--repo-type',
        'zfs',
        '--pool',
        primary.dataset,
        '--repo-path',
        primary.mountpoint,
        ...sshArgs(),
        '--repo-name',
        name,
        '-m',
        'first',
      ),
    );
    expect(ok(agent(...replicateOverSsh(serverSide, replicas))).stdout).toContain('sent 1 snapshot (s1)');
    for (const [i, text] of ['id\n1\n2\n', 'id\n1\n2\n3\n'].entries()) {
      write(path.join(A, 'input', 'survey.csv'), text);
      ok(dsg(A, sb.env, 'sync', '-m', `wave ${i + 2}`));
      expect(ok(agent(...replicateOverSsh(serverSide, replicas))).stdout).toContain(`now at s${i + 2}`);
    }

    // the replica serves every read: clone (same bytes), status, log, snapfetch, validate-chain
    ok(
      dsg(
        sb.dir,
        sb.env,
        'clone',
        `${ssh!.host}:${replicas.mountpoint}/${name}`,
        'b',
        '--repo-type',
        'zfs',
        '--pool',
        replicas.dataset,
        ...sshArgs(),
      ),
    );
    expect(listing(B, noMeta)).toEqual(listing(A, noMeta));
    expect(JSON.parse(ok(dsg(B, sb.env, '--json', 'status')).stdout)).toMatchObject({ clean: true });
    const log = JSON.parse(ok(dsg(B, sb.env, '--json', 'log')).stdout) as { snapshots: { snapshotId: string }[] };
    expect(log.snapshots.map((s) => s.snapshotId).sort()).toEqual(['s1', 's2', 's3']);
    const sf = JSON.parse(ok(dsg(B, sb.env, '--json', 'snapfetch', 'input/survey.csv', '--snapshot', 's1')).stdout) as {
      output: string;
    };
    expect(readFileSync(sf.output, 'utf8')).toBe('id\n1\n');
    rmSync(sf.output);
    expect(JSON.parse(ok(dsg(B, sb.env, '--json', 'validate-chain')).stdout)).toMatchObject({
      ok: true,
      snapshots: 3,
    });

    // a sync to the replica is refused, naming the primary; the replica does not change
    const before = listAll(replicas.dataset);
    write(path.join(B, 'output', 'new.txt'), 'from b\n');
    const refused = dsg(B, sb.env, 'sync', '-m', 'to the replica');
    expect(refused.code).not.toBe(0);
    expect(refused.stderr + refused.stdout).toContain('read-only replica of');
    expect(refused.stderr + refused.stdout).toContain(`${primary.dataset}/${name}`);
    expect(listAll(replicas.dataset)).toEqual(before);

    // failover: the replica becomes the primary, A points at it locally, and syncs on
    const promoted = ok(agent('promote', ...replicaSide, '--repository', name));
    expect(promoted.stdout).toContain(`is now a primary (it replicated `);
    const local = path.join(A, '.dsg', 'config.local.yml');
    writeFileSync(
      local,
      readFileSync(local, 'utf8')
        .split(primary.mountpoint)
        .join(replicas.mountpoint)
        .split(primary.dataset)
        .join(replicas.dataset),
    );
    write(path.join(A, 'output', 'r.txt'), 'v2\n');
    expect(JSON.parse(ok(dsg(A, sb.env, '--json', 'sync', '-m', 'after failover')).stdout)).toMatchObject({
      snapshotId: 's4',
    });
    expect(JSON.parse(ok(dsg(A, sb.env, '--json', 'validate-chain')).stdout)).toMatchObject({
      ok: true,
      snapshots: 4,
    });
    expect(listAll(replicas.dataset).filter((n) => n.startsWith(`${replicas.dataset}/${name}@`))).toEqual(
      ['s1', 's2', 's3', 's4'].map((s) => `${replicas.dataset}/${name}@${s}`),
    );
    // B, which cloned from the replica, follows the new primary too
    const down = JSON.parse(ok(dsg(B, sb.env, '--json', 'sync', '-m', 'b after failover')).stdout) as {
      snapshotId: string;
    };
    expect(down.snapshotId).toBe('s5');
    expect(readFileSync(path.join(B, 'output', 'r.txt'), 'utf8')).toBe('v2\n');
  });

  it('promote refuses a dataset that is no replica, and bad names, changing nothing', () => {
    const p = freshParent(zfs!, 'notreplica');
    parents.push(p);
    const side = ['--type', 'zfs', '--pool', p.dataset, '--mountpoint', p.mountpoint];
    spawnSync('zfs', ['create', `${p.dataset}/plain`]);
    const before = listAll(p.dataset, ['name', 'readonly']);
    const r = agent('promote', ...side, '--repository', 'plain');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('is not a replica');
    const missing = agent('promote', ...side, '--repository', 'absent', '--json');
    expect(missing.code).toBe(1);
    expect((JSON.parse(missing.stdout) as { error: { code: string } }).error.code).toBe('NOT_FOUND');
    expect(agent('promote', ...side, '--repository', '../x').code).not.toBe(0);
    expect(listAll(p.dataset, ['name', 'readonly'])).toEqual(before);
  });
});

describe.skipIf(!zfs || !pool2 || !ssh)('dsg list-repos on a replica host (real agents over the real sshd)', () => {
  it('names the replicas, their primary and how far behind; an unreachable primary is said, exit 0; --json the same', () => {
    const primary = freshParent(zfs!, 'lrprim');
    const replicas = freshParent(pool2!, 'lrrep');
    parents.push(primary, replicas);
    const zfsCmd = (...args: string[]): void => void spawnSync('zfs', args, { stdio: 'inherit' });
    // what list-repos reads is datasets, @sN and the marker: laid down directly (replicate itself is tested above)
    zfsCmd('create', `${primary.dataset}/proj`);
    for (const s of ['s1', 's2', 's3', 's4']) zfsCmd('snapshot', `${primary.dataset}/proj@${s}`);
    zfsCmd('create', `${primary.dataset}/fresh`);
    zfsCmd('snapshot', `${primary.dataset}/fresh@s1`);
    const replica = (name: string, marker: string, snaps: string[]): void => {
      zfsCmd('create', `${replicas.dataset}/${name}`);
      for (const s of snaps) zfsCmd('snapshot', `${replicas.dataset}/${name}@${s}`);
      zfsCmd('set', `dsg:replica-of=${marker}`, `${replicas.dataset}/${name}`);
    };
    replica('proj', `${ssh!.host}:${primary.dataset}/proj`, ['s1', 's2', 's3']);
    replica('fresh', `${ssh!.host}:${primary.dataset}/fresh`, ['s1']);
    replica('gone', 'nohost.invalid:tank/dsg/gone', ['s1', 's2']);
    // a marker that is no plain <host>:<dataset> is reported, never handed to ssh
    replica('odd', '-oProxyCommand=touch /tmp/x:pool/p', ['s1']);
    zfsCmd('create', `${replicas.dataset}/own`); // a primary on the replica host
    const sb = sandbox(
      `user_id: ana@example.org\nuser_name: Ana\nssh:\n  key_path: ${ssh!.key}\n  known_hosts: ${ssh!.knownHosts}\n`,
    );
    const args = [
      'list-repos',
      '--host',
      ssh!.host,
      '--repo-type',
      'zfs',
      '--pool',
      replicas.dataset,
      '--path',
      replicas.mountpoint,
      ...sshArgs(),
    ];
    const text = ok(dsg(sb.dir, sb.env, ...args)).stdout;
    const lines = text.trim().split('\n');
    expect(lines[0]).toBe(`fresh  replica of ${ssh!.host}:${primary.dataset}/fresh, at s1; primary at s1 (up to date)`);
    expect(lines[1]).toMatch(/^gone {2}replica of nohost\.invalid:tank\/dsg\/gone, at s2; primary unreachable \(.+\)$/);
    expect(lines[2]).toMatch(
      /^odd {2}replica of -oProxyCommand=touch \/tmp\/x:pool\/p, at s1; primary unreachable \(its marker .* is not <host>:<dataset> or <host>:<path>\)$/,
    );
    expect(lines[3]).toBe('own');
    expect(lines[4]).toBe(`proj  replica of ${ssh!.host}:${primary.dataset}/proj, at s3; primary at s4 (1 behind)`);
    expect(lines).toHaveLength(5);
    const json = JSON.parse(ok(dsg(sb.dir, sb.env, '--json', ...args)).stdout) as {
      repositories: string[];
      replicas: Record<string, unknown>[];
    };
    expect(json.repositories).toEqual(['fresh', 'gone', 'odd', 'own', 'proj']);
    expect(json.replicas).toEqual([
      {
        name: 'fresh',
        replicaOf: `${ssh!.host}:${primary.dataset}/fresh`,
        head: 's1',
        primaryHead: 's1',
        behind: 0,
        primaryError: null,
      },
      {
        name: 'gone',
        replicaOf: 'nohost.invalid:tank/dsg/gone',
        head: 's2',
        primaryHead: null,
        behind: null,
        primaryError: expect.stringMatching(/nohost\.invalid/) as unknown,
      },
      {
        name: 'odd',
        replicaOf: '-oProxyCommand=touch /tmp/x:pool/p',
        head: 's1',
        primaryHead: null,
        behind: null,
        primaryError: expect.stringMatching(/is not <host>:<dataset>/) as unknown,
      },
      {
        name: 'proj',
        replicaOf: `${ssh!.host}:${primary.dataset}/proj`,
        head: 's3',
        primaryHead: 's4',
        behind: 1,
        primaryError: null,
      },
    ]);
  });
});
