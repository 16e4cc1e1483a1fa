// A non-root agent: the SSH login is an ordinary user whose only powers are
// the sudo rule apps/cli/README.md documents (`sudo -n zfs`, and `sudo -n
// chown` of a new repository's dataset under the parent). testenv.sh makes
// that user and installs exactly that rule for parent <pool>/sudo-e2e.
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { teardownDataset, listAll, requireSudoAgent, requireZfs } from '@dsg/testenv';
import { errorDocSchema, snapmountSchema, syncSchema, validateChainSchema } from '../src/output/json-schemas.js';
import { AGENT, dsg, ok, sandbox, write } from './helpers.js';

const zfs = requireZfs();
const agent = requireSudoAgent();

describe.skipIf(!zfs || !agent)('a non-root agent with the documented sudo rule (real sshd, real zfs-fuse)', () => {
  const parent = `${zfs?.pool}/${agent?.parentName}`;
  let mountpoint = '';
  let agentBin = '';
  let uid = -1;

  const destroyParent = (): void => teardownDataset(parent);

  beforeAll(() => {
    destroyParent(); // a leftover of an interrupted run
    // README step 1 and 3: the parent dataset, group-writable by the agent for its lock files
    execFileSync('zfs', ['create', parent]);
    mountpoint = execFileSync('zfs', ['get', '-H', '-o', 'value', 'mountpoint', parent], { encoding: 'utf8' }).trim();
    execFileSync('chgrp', [agent!.user, mountpoint]);
    chmodSync(mountpoint, 0o2775);
    uid = Number(execFileSync('id', ['-u', agent!.user], { encoding: 'utf8' }).trim());
    // README step 2: the agent is one file; install it where the agent user can read it
    const dir = mkdtempSync(path.join(os.tmpdir(), 'dsg-agent-bin-'));
    chmodSync(dir, 0o755);
    agentBin = path.join(dir, 'dsg-agent.mjs');
    copyFileSync(AGENT, agentBin);
    chmodSync(agentBin, 0o755);
  });
  afterAll(() => {
    destroyParent();
    if (agentBin) rmSync(path.dirname(agentBin), { recursive: true, force: true });
  });

  const sshArgs = (): string[] => [
    '--port',
    String(agent!.ssh.port),
    '--ssh-user',
    agent!.user,
    '--agent',
    'node',
    '--agent',
    agentBin,
  ];
  const userYaml = (): string =>
    `user_id: ana@example.org\nuser_name: Ana\nssh:\n  key_path: ${agent!.ssh.key}\n  known_hosts: ${agent!.ssh.knownHosts}\n`;

  it('init --sudo, sync, clone, snapmount and validate-chain work; the files belong to the agent user', () => {
    const sb = sandbox(userYaml());
    const A = path.join(sb.dir, 'a');
    write(path.join(A, 'input', 'survey.csv'), 'id\n1\n');
    const init = JSON.parse(
      ok(
        dsg(
          A,
          sb.env,
          '--json',
          'init',
          '--host',
          agent!.ssh.host,
          '--repo-type',
          'zfs',
          '--pool',
          parent,
          '--repo-path',
          mountpoint,
          '--repo-name',
          'team',
          '--sudo',
          ...sshArgs(),
        ),
      ).stdout,
    );
    expect(syncSchema.parse(init)).toMatchObject({ snapshotId: 's1', committed: true });
    // sudo is this login's need, not the team's: it is in the working copy's local settings only
    expect(readFileSync(path.join(A, '.dsg', 'config.local.yml'), 'utf8')).toMatch(/sudo: true/);
    expect(readFileSync(path.join(A, '.dsgconfig.yml'), 'utf8')).not.toMatch(/^\s+(sudo|agent|port|user):/m);
    // the dataset's root and the uploaded file are the agent user's, not root's
    expect(statSync(path.join(mountpoint, 'team')).uid).toBe(uid);
    expect(statSync(path.join(mountpoint, 'team', 'input', 'survey.csv')).uid).toBe(uid);

    write(path.join(A, 'input', 'survey.csv'), 'id\n1\n2\n');
    expect(syncSchema.parse(JSON.parse(ok(dsg(A, sb.env, '--json', 'sync', '-m', 'second')).stdout))).toMatchObject({
      snapshotId: 's2',
    });

    ok(
      dsg(
        sb.dir,
        sb.env,
        'clone',
        `${agent!.ssh.host}:${mountpoint}/team`,
        'b',
        '--repo-type',
        'zfs',
        '--pool',
        parent,
        '--sudo',
        ...sshArgs(),
      ),
    );
    expect(readFileSync(path.join(sb.dir, 'b', 'input', 'survey.csv'), 'utf8')).toBe('id\n1\n2\n');
    // by URL alone: the agent finds the dataset through `sudo -n zfs list` (its login cannot list without sudo)
    const byUrl = ok(
      dsg(sb.dir, sb.env, 'clone', `${agent!.ssh.host}:${mountpoint}/team`, 'c', '--sudo', ...sshArgs()),
    );
    expect(byUrl.stdout).toContain(`is the ZFS dataset ${parent}/team: cloning with --repo-type zfs --pool ${parent}`);
    expect(readFileSync(path.join(sb.dir, 'c', '.dsg', 'config.local.yml'), 'utf8')).toMatch(
      /type: zfs[\s\S]*sudo: true/,
    );
    expect(readFileSync(path.join(sb.dir, 'c', 'input', 'survey.csv'), 'utf8')).toBe('id\n1\n2\n');

    const m = snapmountSchema.parse(JSON.parse(ok(dsg(A, sb.env, '--json', 'snapmount', '--snapshot', 's1')).stdout));
    expect(readFileSync(path.join(m.mountpoint, 'input', 'survey.csv'), 'utf8')).toBe('id\n1\n');
    ok(dsg(A, sb.env, 'snapmount', '--unmount', m.mountpoint));

    expect(validateChainSchema.parse(JSON.parse(ok(dsg(A, sb.env, '--json', 'validate-chain')).stdout))).toMatchObject({
      ok: true,
      snapshots: 2,
    });
    // nothing left behind: the repository, its snapshots, no temp or view datasets
    expect(listAll(parent).filter((n) => n !== parent)).toEqual([
      `${parent}/team`,
      `${parent}/team@s1`,
      `${parent}/team@s2`,
    ]);
  });

  it('without sudo: a clear permission error with the hint, and nothing created', () => {
    const sb = sandbox(userYaml());
    const A = path.join(sb.dir, 'a');
    write(path.join(A, 'input', 'x.csv'), 'x\n');
    const before = listAll(parent);
    const r = dsg(
      A,
      sb.env,
      '--json',
      'init',
      '--host',
      agent!.ssh.host,
      '--repo-type',
      'zfs',
      '--pool',
      parent,
      '--repo-path',
      mountpoint,
      '--repo-name',
      'nosudo',
      ...sshArgs(),
    );
    expect(r.code).toBe(1);
    const doc = errorDocSchema.parse(JSON.parse(r.stdout));
    expect(doc.error.message).toMatch(/permission denied/i);
    expect(doc.error.recoveryHint).toMatch(/sudo: true/);
    expect(listAll(parent)).toEqual(before);
  });
});
