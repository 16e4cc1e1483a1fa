import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { requireSsh } from '@dsg/testenv';
import { errorDocSchema, validateConfigSchema } from '../src/output/json-schemas.js';
import { AGENT, dsg, listing, sandbox, write } from './helpers.js';

const ssh = requireSsh();

function project(sb: { dir: string }, yaml: string): string {
  const dir = path.join(sb.dir, 'p');
  write(path.join(dir, '.dsgconfig.yml'), yaml);
  write(path.join(dir, 'input', 'a.csv'), 'a\n');
  return dir;
}

describe('bad input: exit code and message as documented, nothing changed', () => {
  it('no project config → exit 2, says where it looked and what to do', () => {
    const sb = sandbox();
    const r = dsg(sb.dir, sb.env, 'status');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/error: no \.dsgconfig\.yml found in .* or any parent directory\nhint: Run `dsg init`/);
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack without --debug
    const d = dsg(sb.dir, sb.env, '--debug', 'status');
    expect(d.stderr).toMatch(/\n\s+at /);
    expect(d.stderr).toContain('[debug]');
  });

  it('no user config → exit 2 naming the file to create', () => {
    const sb = sandbox();
    const env = {
      ...sb.env,
      DSG_CONFIG_HOME: path.join(sb.dir, 'nowhere'),
      XDG_CONFIG_HOME: path.join(sb.dir, 'nowhere'),
    };
    const dir = project(sb, 'name: d\nrepository: {type: posix, root: /tmp}\n');
    const r = dsg(dir, env, 'status');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/no user config found[\s\S]*hint: Create .*dsg\.yml with at least "user_id/);
  });

  it('invalid YAML → exit 2 with file and line; --json gives one error document', () => {
    const sb = sandbox();
    const dir = project(sb, 'name: d\nrepository:\n  type: posix\n  root: [oops\n');
    const r = dsg(dir, sb.env, '--json', 'status');
    expect(r.code).toBe(2);
    const doc = errorDocSchema.parse(JSON.parse(r.stdout));
    expect(doc.error.code).toBe('CONFIG');
    expect(doc.error.message).toMatch(/\.dsgconfig\.yml:\d+: invalid YAML/);
    expect(r.stderr).toMatch(/\.dsgconfig\.yml:\d+: invalid YAML/);
  });

  it('a wrong key value → exit 2 naming file:line: key and what is expected', () => {
    const sb = sandbox();
    const dir = project(sb, 'name: d\nrepository:\n  type: zfs\n  pool: tank/dsg\n  mountpoint: relative\n');
    const r = dsg(dir, sb.env, 'validate-config', '--no-backend');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/\.dsgconfig\.yml:5: repository\.mountpoint: expected an absolute path/);
  });

  it('a snapshot message ZFS could not store, or with control characters → exit 2 before anything connects', () => {
    const sb = sandbox();
    const repos = path.join(sb.dir, 'repos');
    const dir = project(sb, `name: d\nrepository: {type: posix, root: ${repos}}\n`);
    const before = listing(sb.dir);
    for (const m of ['x'.repeat(2049), 'erase\u001b[2Kline']) {
      const r = dsg(dir, sb.env, '--json', 'sync', '-m', m);
      expect(r.code, r.stderr).toBe(2);
      expect(errorDocSchema.parse(JSON.parse(r.stdout)).error.message).toMatch(/message/);
      expect(r.stdout).not.toContain('x'.repeat(100)); // never echoed back
    }
    expect(listing(sb.dir)).toEqual(before);
  });

  it('a local repository inside a data directory (or the project itself) → refused, nothing created', () => {
    const sb = sandbox();
    for (const [root, name] of [
      ['input/repos', 'd'],
      ['..', 'p'], // <parent>/p is the project directory itself
    ] as const) {
      const dir = path.join(sb.dir, 'p');
      write(path.join(dir, 'input', 'a.csv'), 'a\n');
      const before = listing(sb.dir);
      const r = dsg(
        dir,
        sb.env,
        '--json',
        'init',
        '--host',
        'localhost',
        '--repo-type',
        'posix',
        '--repo-path',
        path.resolve(dir, root),
        '--repo-name',
        name,
      );
      expect(r.code, r.stderr).toBe(1);
      const doc = errorDocSchema.parse(JSON.parse(r.stdout));
      expect(doc.error.code).toBe('REPOSITORY_IN_PROJECT');
      expect(doc.error.recoveryHint).toMatch(/outside the project/);
      // nothing new: no repository, no snapshot, and the config init wrote first is taken back
      expect(Object.keys(listing(sb.dir)).filter((k) => !(k in before))).toEqual([]);
      expect(r.stderr).toContain('removed the .dsgconfig.yml');
    }
  });

  it('status of a project whose local repository is inside its data → the error document, not a crash', () => {
    const sb = sandbox();
    const dir = path.join(sb.dir, 'p');
    write(path.join(dir, 'input', 'a.csv'), 'a\n');
    // a hand-written config (init refuses this): the failure comes while status reads the working copy
    write(
      path.join(dir, '.dsgconfig.yml'),
      `name: r\nrepository:\n  type: posix\n  host: localhost\n  root: ${path.join(dir, 'input')}\ndata_dirs: [input]\n`,
    );
    for (const args of [['--json', 'status'], ['status']]) {
      const r = dsg(dir, sb.env, ...args);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
      if (args[0] === '--json')
        expect(errorDocSchema.parse(JSON.parse(r.stdout)).error.code).toBe('REPOSITORY_IN_PROJECT');
      else expect(r.stderr).toMatch(/error: the repository .* is inside the data directory/);
    }
  });

  it('unknown repository → exit 1, nothing created on either side', () => {
    const sb = sandbox();
    const root = mkdtempSync(path.join(os.tmpdir(), 'dsg-cli-empty-'));
    const before = listing(sb.dir);
    const r = dsg(sb.dir, sb.env, 'clone', `localhost:${root}/nosuch`, 'x');
    expect(r.code).toBe(1);
    // the agent was asked what the path is (clone by URL): neither a ZFS dataset's mountpoint nor a repository
    expect(r.stderr).toMatch(
      /no dsg repository at localhost:.*nosuch: .* is neither a ZFS dataset's mountpoint nor a dsg repository\nhint: /,
    );
    expect(listing(sb.dir)).toEqual(before);
    expect(listing(root)).toEqual({});
  });

  it('usage errors → exit 2 with a hint', () => {
    const sb = sandbox();
    const r = dsg(sb.dir, sb.env, 'log', '--bogus');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/unknown option '--bogus'[\s\S]*hint: /);
    const j = dsg(sb.dir, sb.env, '--json', 'nosuchcommand');
    expect(j.code).toBe(2);
    expect(errorDocSchema.parse(JSON.parse(j.stdout)).exitCode).toBe(2);
    // --sudo is a zfs setting: refused for posix before anything is written
    const before = listing(sb.dir);
    const s = dsg(sb.dir, sb.env, 'init', '--repo-type', 'posix', '--repo-path', path.join(sb.dir, 'repos'), '--sudo');
    expect(s.code).toBe(2);
    expect(s.stderr).toMatch(/--sudo is for zfs repositories/);
    expect(listing(sb.dir)).toEqual(before);
  });

  it('--help shows an example and the exit codes; --version prints the version', () => {
    const sb = sandbox();
    const h = dsg(sb.dir, sb.env, 'snapfetch', '--help');
    expect(h.code).toBe(0);
    expect(h.stdout).toMatch(/Example:\n {2}\$ dsg snapfetch/);
    expect(h.stdout).toMatch(/Exit codes:[\s\S]*3 {2}conflicts[\s\S]*4 {2}repository locked/);
    expect(dsg(sb.dir, sb.env, '--version').stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it('completion scripts list the commands and their options', () => {
    const sb = sandbox();
    const b = dsg(sb.dir, sb.env, 'completion', 'bash');
    expect(b.code).toBe(0);
    expect(b.stdout).toContain('complete -o filenames -F _dsg dsg');
    expect(b.stdout).toMatch(/snapfetch\) opts="[^"]*--snapshot/);
    const z = dsg(sb.dir, sb.env, 'completion', 'zsh');
    expect(z.stdout).toMatch(/^#compdef dsg/);
    expect(z.stdout).toContain("'validate-chain:");
    expect(dsg(sb.dir, sb.env, 'completion', 'fish').code).toBe(2);
  });

  describe.skipIf(!ssh)('over ssh', () => {
    const userYaml = (knownHosts: string): string =>
      `user_id: ana@example.org\nssh:\n  key_path: ${ssh!.key}\n  known_hosts: ${knownHosts}\nhosts:\n  127.0.0.1:\n    agent: [node, ${AGENT}]\n`;
    // the agent command comes from the user config: .dsgconfig.yml is never trusted with one
    const cfg = (host: string, port: number): string =>
      `name: d\nrepository:\n  type: posix\n  host: ${host}\n  port: ${port}\n  user: ${ssh!.user}\n  root: /tmp\n`;

    it('unreachable host → exit 1 with a transport hint, nothing written locally', () => {
      const sb = sandbox(userYaml(ssh!.knownHosts));
      const dir = project(sb, cfg('127.0.0.1', 1));
      const before = listing(dir);
      const r = dsg(dir, sb.env, '--json', 'status');
      expect(r.code).toBe(1);
      const doc = errorDocSchema.parse(JSON.parse(r.stdout));
      expect(doc.error.code).toBe('TRANSPORT');
      expect(r.stderr).toMatch(/error: .*\nhint: /);
      expect(listing(dir)).toEqual(before);
    });

    it('wrong host key → exit 1, refused (never auto-accepted)', () => {
      const kh = path.join(mkdtempSync(path.join(os.tmpdir(), 'dsg-kh-')), 'known_hosts');
      // a valid ed25519 key that is not the server's
      const other = readFileSync(ssh!.key.replace(/id_ed25519$/, 'id_ed25519.pub'), 'utf8')
        .trim()
        .split(' ')
        .slice(0, 2)
        .join(' ');
      writeFileSync(kh, `[127.0.0.1]:${ssh!.port} ${other}\n`);
      const sb = sandbox(userYaml(kh));
      const dir = project(sb, cfg('127.0.0.1', ssh!.port));
      const before = listing(dir);
      const r = dsg(dir, sb.env, 'status');
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/host key/i);
      expect(listing(dir)).toEqual(before);
    });

    it('validate-config reaches the host over ssh', () => {
      const sb = sandbox(userYaml(ssh!.knownHosts));
      const dir = project(sb, cfg('127.0.0.1', ssh!.port));
      mkdirSync(path.join(dir, 'output'));
      const r = dsg(dir, sb.env, '--json', 'validate-config');
      expect(r.code).toBe(0);
      expect(validateConfigSchema.parse(JSON.parse(r.stdout)).backend).toMatchObject({ checked: true, ok: true });
    });
  });
});
