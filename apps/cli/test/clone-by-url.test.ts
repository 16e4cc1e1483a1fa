/**
 * `dsg clone host:/path/name` without --repo-type/--pool, through the built
 * dsg: the agent detects what the path is (protocol 1.3 detectRepository)
 * and the clone's configs say so. Over the real sshd to the real zfs-fuse
 * pool and to a posix directory, and on this machine (in-process agent).
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freshParent, requireSsh, requireZfs, type TestParent } from '@dsg/testenv';
import { statusSchema } from '../src/output/json-schemas.js';
import { AGENT, dsg, ok, sandbox, write } from './helpers.js';

const zfs = requireZfs();
const ssh = requireSsh();
const parents: TestParent[] = [];
afterAll(() => {
  for (const p of parents) p.destroy();
});

const sshArgs = (): string[] => ['--port', String(ssh!.port), '--ssh-user', ssh!.user, '--agent', `node ${AGENT}`];
const sshUser = (): string =>
  `user_id: ana@example.org\nssh:\n  key_path: ${ssh!.key}\n  known_hosts: ${ssh!.knownHosts}\n`;
const localConfig = (dir: string): string => readFileSync(path.join(dir, '.dsg', 'config.local.yml'), 'utf8');

/** A project with one file, inited with `initArgs`; returns the sandbox and the project dir. */
function initProject(userYaml: string | undefined, name: string, initArgs: string[]) {
  const sb = sandbox(userYaml);
  const A = path.join(sb.dir, 'a');
  write(path.join(A, 'input', 'a.csv'), 'id\n1\n');
  ok(dsg(A, sb.env, 'init', '--repo-name', name, ...initArgs));
  return { sb, A };
}

describe('clone by URL alone: the agent says what the path is', () => {
  it('a posix repository on this machine is detected as posix; nothing there is a clear error', () => {
    const repos = mkdtempSync(path.join(os.tmpdir(), 'dsg-cli-url-'));
    const { sb } = initProject(undefined, 'up', ['--repo-type', 'posix', '--repo-path', repos]);
    const B = path.join(sb.dir, 'b');
    ok(dsg(sb.dir, sb.env, 'clone', `localhost:${repos}/up`, B));
    expect(readFileSync(path.join(B, 'input', 'a.csv'), 'utf8')).toBe('id\n1\n');
    expect(localConfig(B)).toMatch(/type: posix/);

    // an empty directory is neither
    mkdirSync(path.join(repos, 'empty'));
    const C = path.join(sb.dir, 'c');
    const r = dsg(sb.dir, sb.env, 'clone', `localhost:${repos}/empty`, C);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      `error: no dsg repository at localhost:${repos}/empty: ${repos}/empty is neither a ZFS dataset's mountpoint nor a dsg repository`,
    );
    expect(r.stderr).toContain(`hint: Check the path (\`dsg list-repos --host localhost --path ${repos}\``);
    expect(r.stderr).toContain('give --repo-type zfs --pool <parent dataset>');
    expect(existsSync(C), 'nothing created').toBe(false);
  });

  it.skipIf(!ssh)('over ssh: a posix repository, and a path that is no repository', () => {
    const repos = mkdtempSync(path.join(os.tmpdir(), 'dsg-cli-url-ssh-'));
    const { sb } = initProject(sshUser(), 'sp', [
      '--host',
      ssh!.host,
      '--repo-type',
      'posix',
      '--repo-path',
      repos,
      ...sshArgs(),
    ]);
    const B = path.join(sb.dir, 'b');
    ok(dsg(sb.dir, sb.env, 'clone', `${ssh!.host}:${repos}/sp`, B, ...sshArgs()));
    expect(readFileSync(path.join(B, 'input', 'a.csv'), 'utf8')).toBe('id\n1\n');
    expect(localConfig(B)).toMatch(/type: posix/);
    const r = dsg(sb.dir, sb.env, 'clone', `${ssh!.host}:${repos}/nothing`, path.join(sb.dir, 'c'), ...sshArgs());
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`no dsg repository at ${ssh!.host}:${repos}/nothing`);
    expect(existsSync(path.join(sb.dir, 'c'))).toBe(false);
  });

  it.skipIf(!ssh || !zfs)('over ssh to the real zfs pool: detected as zfs, the pool filled in; two copies sync', () => {
    const parent = freshParent(zfs!, 'url');
    parents.push(parent);
    const zfsInit = [
      '--host',
      ssh!.host,
      '--repo-type',
      'zfs',
      '--pool',
      parent.dataset,
      '--repo-path',
      parent.mountpoint,
    ];
    const { sb, A } = initProject(sshUser(), 'zu', [...zfsInit, ...sshArgs()]);
    const B = path.join(sb.dir, 'b');
    const r = ok(dsg(sb.dir, sb.env, 'clone', `${ssh!.host}:${parent.mountpoint}/zu`, B, ...sshArgs()));
    expect(r.stdout).toContain(
      `${ssh!.host}:${parent.mountpoint}/zu is the ZFS dataset ${parent.dataset}/zu: cloning with --repo-type zfs --pool ${parent.dataset}`,
    );
    expect(readFileSync(path.join(B, 'input', 'a.csv'), 'utf8')).toBe('id\n1\n');
    const local = localConfig(B);
    expect(local).toContain('type: zfs');
    expect(local).toContain(`pool: ${parent.dataset}`);
    expect(local).toContain(`mountpoint: ${parent.mountpoint}`);
    // the clone is a working copy of the zfs repository: a change goes round
    write(path.join(B, 'input', 'b.csv'), 'b\n');
    expect(ok(dsg(B, sb.env, 'sync', '-m', 'from b')).stdout).toContain('s2 committed');
    ok(dsg(A, sb.env, 'sync'));
    expect(readFileSync(path.join(A, 'input', 'b.csv'), 'utf8')).toBe('b\n');
    expect(statusSchema.parse(JSON.parse(ok(dsg(A, sb.env, '--json', 'status')).stdout)).clean).toBe(true);
  });
});
