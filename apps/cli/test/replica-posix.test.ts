import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { requireSsh } from '@dsg/testenv';
import { AGENT, dsg, listing, ok, sandbox, write } from './helpers.js';

const ssh = requireSsh();
const PRIMARY = mkdtempSync(path.join(os.tmpdir(), 'dsg-cli-primary-'));
const REPLICAS = mkdtempSync(path.join(os.tmpdir(), 'dsg-cli-replicas-'));
afterAll(() => {
  // snapshots are sealed read-only
  spawnSync('chmod', ['-R', 'u+w', PRIMARY, REPLICAS]);
  rmSync(PRIMARY, { recursive: true, force: true });
  rmSync(REPLICAS, { recursive: true, force: true });
});

/** The agent on the server, as cron or the systemd timer runs it. */
function agent(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync('node', [AGENT, ...args], { encoding: 'utf8' });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

const noMeta = (rel: string): boolean => rel === '.dsg' || rel.startsWith('.dsg/');

describe.skipIf(!ssh)('a posix replica (rsync over the real sshd) through the built dsg', () => {
  it('clone, log and validate-chain from the replica; sync to it refused; promote, and the chain continues', () => {
    const sb = sandbox();
    const name = `rep-${process.pid}`;
    const A = path.join(sb.dir, 'a');
    const B = path.join(sb.dir, 'b');
    const replicate = (): string =>
      ok(
        agent(
          'replicate',
          '--type',
          'posix',
          '--root',
          PRIMARY,
          '--to',
          `${ssh!.user}@${ssh!.host}:${REPLICAS}`,
          '--ssh-port',
          String(ssh!.port),
          '--ssh-key',
          ssh!.key,
          '--ssh-option',
          `UserKnownHostsFile=${ssh!.knownHosts}`,
          // the marker's host: list-repos on the replica reaches the primary through it (here: locally)
          '--primary-name',
          'localhost',
        ),
      ).stdout;

    write(path.join(A, 'input', 'survey.csv'), 'id\n1\n');
    write(path.join(A, 'output', 'r.txt'), 'v1\n');
    ok(
      dsg(
        A,
        sb.env,
        'init',
        '--host',
        'localhost',
        '--repo-type',
        'posix',
        '--repo-path',
        PRIMARY,
        '--repo-name',
        name,
      ),
    );
    expect(replicate()).toContain('sent 1 snapshot (s1)');
    for (const [i, text] of ['id\n1\n2\n', 'id\n1\n2\n3\n'].entries()) {
      write(path.join(A, 'input', 'survey.csv'), text);
      ok(dsg(A, sb.env, 'sync', '-m', `wave ${i + 2}`));
      expect(replicate()).toContain(`now at s${i + 2}`);
    }

    // the replica serves the reads: clone (same bytes), log, validate-chain
    ok(dsg(sb.dir, sb.env, 'clone', `localhost:${REPLICAS}/${name}`, 'b'));
    expect(listing(B, noMeta)).toEqual(listing(A, noMeta));
    const log = JSON.parse(ok(dsg(B, sb.env, '--json', 'log')).stdout) as { snapshots: { snapshotId: string }[] };
    expect(log.snapshots.map((s) => s.snapshotId).sort()).toEqual(['s1', 's2', 's3']);
    expect(JSON.parse(ok(dsg(B, sb.env, '--json', 'validate-chain')).stdout)).toMatchObject({
      ok: true,
      snapshots: 3,
    });

    // list-repos on the replica host: a replica of the primary, at s3, the primary at s3 too
    const listed = JSON.parse(
      ok(dsg(sb.dir, sb.env, '--json', 'list-repos', '--host', 'localhost', '--path', REPLICAS)).stdout,
    ) as {
      replicas: unknown[];
    };
    expect(listed.replicas).toEqual([
      { name, replicaOf: `localhost:${PRIMARY}/${name}`, head: 's3', primaryHead: 's3', behind: 0, primaryError: null },
    ]);
    expect(ok(dsg(sb.dir, sb.env, 'list-repos', '--host', 'localhost', '--path', REPLICAS)).stdout).toContain(
      `${name}  replica of localhost:${PRIMARY}/${name}, at s3; primary at s3`,
    );

    // a sync to the replica is refused before anything changes, naming the primary
    const before = listing(path.join(REPLICAS, name));
    write(path.join(B, 'output', 'new.txt'), 'from b\n');
    const refused = dsg(B, sb.env, 'sync', '-m', 'to the replica');
    expect(refused.code).not.toBe(0);
    expect(refused.stderr + refused.stdout).toContain('read-only replica of');
    expect(refused.stderr + refused.stdout).toContain(`${PRIMARY}/${name}`);
    expect(listing(path.join(REPLICAS, name))).toEqual(before);

    // failover: promote, point A at the replica, and the chain goes on there
    const promoted = ok(agent('promote', '--type', 'posix', '--root', REPLICAS, '--repository', name));
    expect(promoted.stdout).toContain(`is now a primary (it replicated `);
    const local = path.join(A, '.dsg', 'config.local.yml');
    writeFileSync(local, readFileSync(local, 'utf8').split(PRIMARY).join(REPLICAS));
    write(path.join(A, 'output', 'r.txt'), 'v2\n');
    expect(JSON.parse(ok(dsg(A, sb.env, '--json', 'sync', '-m', 'after failover')).stdout)).toMatchObject({
      snapshotId: 's4',
    });
    expect(JSON.parse(ok(dsg(A, sb.env, '--json', 'validate-chain')).stdout)).toMatchObject({
      ok: true,
      snapshots: 4,
    });
    // promote again: no longer a replica, refused, nothing changes
    const again = agent('promote', '--type', 'posix', '--root', REPLICAS, '--repository', name);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('is not a replica');
  });
});
