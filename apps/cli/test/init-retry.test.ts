import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { requireSsh } from '@dsg/testenv';
import { AGENT, dsg, ok, sandbox } from './helpers.js';

const ssh = requireSsh();

/** A project with one data file and nothing else: what `init` finds on a first try. */
function project(dir: string): string {
  const root = path.join(dir, 'proj');
  mkdirSync(path.join(root, 'input'), { recursive: true });
  writeFileSync(path.join(root, 'input', 'a.csv'), 'id\n1\n');
  return root;
}

const untouched = (root: string) => expect(readdirSync(root).sort()).toEqual(['input']);

describe('init that fails before its transaction takes back the config it wrote, so a corrected retry works', () => {
  it('a repository that already exists: the second project is left as it was', () => {
    const sb = sandbox();
    const repos = path.join(sb.dir, 'repos');
    const args = ['init', '--host', 'localhost', '--repo-type', 'posix', '--repo-path', repos, '--repo-name', 'p'];
    ok(dsg(project(sb.dir), sb.env, ...args));
    const other = path.join(sb.dir, 'other');
    mkdirSync(other);
    const second = project(other);
    const r = dsg(second, sb.env, ...args);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('already exists');
    expect(r.stderr).toContain('removed the .dsgconfig.yml and .dsg/config.local.yml this init wrote');
    untouched(second);
    ok(dsg(second, sb.env, ...args.slice(0, -1), 'q'));
    expect(existsSync(path.join(repos, 'q'))).toBe(true);
  });

  it('a host that does not resolve is named as such', () => {
    const sb = sandbox();
    const root = project(sb.dir);
    const r = dsg(
      root,
      sb.env,
      'init',
      '--host',
      'no-such-host.invalid',
      '--repo-type',
      'posix',
      '--repo-path',
      '/srv/dsg',
    );
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/cannot resolve host "no-such-host\.invalid"/);
    expect(r.stderr).toContain('not in DNS or /etc/hosts');
    untouched(root);
  });

  it.skipIf(!ssh)('an agent missing on the host: says so and how to fix it; the retry with --agent succeeds', () => {
    const sb = sandbox(
      `user_id: ana@example.org\nuser_name: Ana\nssh:\n  key_path: ${ssh!.key}\n  known_hosts: ${ssh!.knownHosts}\n`,
    );
    const root = project(sb.dir);
    const base = ['init', '--host', ssh!.host, '--port', String(ssh!.port), '--ssh-user', ssh!.user];
    const repo = ['--repo-type', 'posix', '--repo-path', path.join(sb.dir, 'server'), '--repo-name', 'p'];
    const r = dsg(root, sb.env, ...base, '--agent', '/nonexistent/dsg-agent', ...repo);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`dsg-agent not found on ${ssh!.host} for ${ssh!.user}`);
    expect(r.stderr).toMatch(
      /hint: Install it on .* \(npm i -g @dsg\/agent, see the agent README\), or give its path with --agent/,
    );
    expect(r.stderr).not.toContain('Check the connection');
    untouched(root);
    // the agent command as one string, as git takes core.sshCommand
    const agent = `node '${AGENT}'`;
    const again = ok(dsg(root, sb.env, ...base, '--agent', agent, ...repo));
    expect(again.stdout).toContain('initialized');
    expect(readFileSync(path.join(root, '.dsg', 'config.local.yml'), 'utf8')).toMatch(
      /agent:\n\s+- node\n\s+- .*dsg-agent\.mjs/,
    );
    // list-repos outside any project, with the same SSH options as init and clone
    const list = ok(
      dsg(
        sb.dir,
        sb.env,
        'list-repos',
        '--host',
        ssh!.host,
        '--path',
        path.join(sb.dir, 'server'),
        '--port',
        String(ssh!.port),
        '--ssh-user',
        ssh!.user,
        '--agent',
        agent,
      ),
    );
    expect(list.stdout.trim().split('\n')).toEqual(['p']);
    const refused = dsg(
      sb.dir,
      sb.env,
      'list-repos',
      '--host',
      ssh!.host,
      '--path',
      '/srv',
      '--agent',
      'dsg-agent; id',
    );
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(
      '--agent: the agent command "dsg-agent; id" holds ";", which only a shell would act on',
    );
  });
});
