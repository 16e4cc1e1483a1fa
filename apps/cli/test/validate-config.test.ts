// `dsg validate-config --verbose` (every effective setting and where it came
// from) and `--fix` (per-person keys out of the shared .dsgconfig.yml),
// through the built binary.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { jsonSchemas } from '../src/output/json-schemas.js';
import { dsg, ok, sandbox } from './helpers.js';

const USER_YAML = 'user_id: ana@example.org\nuser_name: Ana\nhosts:\n  localhost:\n    port: 2222\n';

/** A shared config with one person's keys in it, as an older dsg or a hand edit left it. */
const SHARED = (root: string): string =>
  [
    '# the team config',
    'name: demo',
    'repository:',
    '  type: posix   # shared by everyone',
    '  host: localhost',
    `  root: ${root}`,
    '  user: bob     # bob put his login here',
    '  port: 2200',
    "  agent: node '/opt/dsg tools/dsg-agent.mjs'",
    'data_dirs: [input, output]   # flow list, kept as written',
    'ignore:',
    '  suffixes: [.tmp]',
    '',
  ].join('\n');

function setup(yaml: (root: string) => string, o: { local?: string } = {}) {
  const sb = sandbox(USER_YAML);
  const proj = path.join(sb.dir, 'proj');
  mkdirSync(path.join(proj, 'input'), { recursive: true });
  const repos = path.join(sb.dir, 'repos');
  mkdirSync(repos);
  writeFileSync(path.join(proj, '.dsgconfig.yml'), yaml(repos));
  if (o.local !== undefined) {
    mkdirSync(path.join(proj, '.dsg'), { recursive: true });
    writeFileSync(path.join(proj, '.dsg', 'config.local.yml'), o.local.replace('ROOT', repos));
  }
  return { ...sb, proj, repos };
}

type Settings = ReturnType<(typeof jsonSchemas)['validate-config']['parse']>['settings'];
const setting = (s: Settings, key: string) => s.find((x) => x.key === key)!;
const json = (stdout: string) => jsonSchemas['validate-config'].parse(JSON.parse(stdout));
const read = (f: string) => readFileSync(f, 'utf8');

describe('validate-config --verbose: every setting and where it came from', () => {
  it('names the source of each setting, in precedence order, in text and --json', () => {
    const t = setup(SHARED, { local: 'name: demo\nrepository:\n  type: posix\n  host: localhost\n  root: ROOT\n' });
    const env = { ...t.env, DSG_AGENT_TIMEOUT: '90' };
    const d = json(ok(dsg(t.proj, env, 'validate-config', '--no-backend', '--json')).stdout);
    expect(d.precedence).toEqual([
      'flag',
      'environment',
      '.dsg/config.local.yml',
      'user config hosts:',
      'user config',
      '.dsgconfig.yml',
      'default',
    ]);
    const local = path.join(t.proj, '.dsg', 'config.local.yml');
    const shared = path.join(t.proj, '.dsgconfig.yml');
    const userFile = path.join(t.dir, 'cfg', 'dsg.yml');
    expect(setting(d.settings, 'name')).toMatchObject({ value: 'demo', source: 'local', from: local });
    expect(setting(d.settings, 'repository.root')).toMatchObject({ value: t.repos, source: 'local', from: local });
    // the user config's hosts: entry beats .dsgconfig.yml, whose port this copy does not use
    const port = setting(d.settings, 'repository.port');
    expect(port).toMatchObject({ value: 2222, source: 'user-host', from: `${userFile} (hosts: localhost)` });
    expect(port.shadowed).toEqual([
      {
        value: 2200,
        source: 'shared',
        from: shared,
        note: 'ignored: connection settings come from .dsg/config.local.yml',
      },
    ]);
    expect(setting(d.settings, 'repository.user')).toMatchObject({ source: 'default' });
    expect(setting(d.settings, 'repository.user').shadowed[0]).toMatchObject({ value: 'bob', source: 'shared' });
    const agent = setting(d.settings, 'repository.agent');
    expect(agent).toMatchObject({ value: ['dsg-agent'], source: 'default' });
    expect(agent.shadowed[0]).toMatchObject({
      value: ['node', '/opt/dsg tools/dsg-agent.mjs'],
      source: 'shared',
      note: 'ignored: an agent command is never taken from .dsgconfig.yml',
    });
    expect(setting(d.settings, 'ssh.agent_timeout')).toMatchObject({
      value: 90,
      source: 'env',
      from: 'DSG_AGENT_TIMEOUT',
    });
    expect(setting(d.settings, 'data_dirs')).toMatchObject({ value: ['input', 'output'], source: 'shared' });
    expect(setting(d.settings, 'ignore.suffixes')).toMatchObject({ value: ['.tmp'], source: 'shared' });
    expect(setting(d.settings, 'ignore.names')).toMatchObject({ source: 'default', from: null });
    expect(setting(d.settings, 'user_id')).toMatchObject({ value: 'ana@example.org', source: 'user', from: userFile });

    const text = ok(dsg(t.proj, env, 'validate-config', '--no-backend', '--verbose')).stdout;
    expect(text).toContain(
      'settings (highest precedence first: flag > environment > .dsg/config.local.yml > user config hosts: > user config > .dsgconfig.yml > default):',
    );
    expect(text).toMatch(
      /repository\.port +2222 +\(user config .*dsg\.yml \(hosts: localhost\)\)\n +shadowed: 2200 \(/,
    );
    expect(text).toMatch(/ssh\.agent_timeout +90 +\(environment DSG_AGENT_TIMEOUT\)/);
    // without --verbose: no settings table
    expect(ok(dsg(t.proj, env, 'validate-config', '--no-backend')).stdout).not.toContain('settings (');
  });

  it('a copy that never synced: the shared block is in use, but never its agent', () => {
    const t = setup(SHARED);
    const d = json(ok(dsg(t.proj, t.env, 'validate-config', '--no-backend', '--json')).stdout);
    expect(d.connection?.source).toBe('shared');
    expect(setting(d.settings, 'repository.user')).toMatchObject({ value: 'bob', source: 'shared' });
    // the hosts: entry is above .dsgconfig.yml
    expect(setting(d.settings, 'repository.port')).toMatchObject({ value: 2222, source: 'user-host' });
    expect(setting(d.settings, 'repository.agent')).toMatchObject({ value: ['dsg-agent'], source: 'default' });
  });
});

describe('validate-config --fix: per-person keys out of .dsgconfig.yml', () => {
  it('a copy that never synced: user moves to .dsg/config.local.yml, agent is dropped, comments stay', () => {
    const t = setup(SHARED);
    const before = json(ok(dsg(t.proj, t.env, 'validate-config', '--no-backend', '--json')).stdout);
    const r = ok(dsg(t.proj, t.env, 'validate-config', '--no-backend', '--fix'));
    // the port in use is the user config's (hosts: is above .dsgconfig.yml): moving 2200 would change it
    expect(r.stdout).toContain(
      'removed repository.port: 2200 from .dsgconfig.yml and did not move it: your user config sets it for this host (2222)',
    );
    expect(r.stdout).toContain('moved repository.user: bob from .dsgconfig.yml to .dsg/config.local.yml');
    expect(r.stdout).toContain(
      'removed repository.agent: node /opt/dsg tools/dsg-agent.mjs from .dsgconfig.yml and did not move it: an agent command is never taken from a shared file',
    );
    // the shared file: exactly the three lines gone, everything else byte for byte
    const expected = SHARED(t.repos)
      .split('\n')
      .filter((l) => !/^ {2}(user|port|agent):/.test(l))
      .join('\n');
    expect(read(path.join(t.proj, '.dsgconfig.yml'))).toBe(expected);
    const local = read(path.join(t.proj, '.dsg', 'config.local.yml'));
    expect(local).not.toContain('port');
    expect(local).toContain('user: bob');
    expect(local).not.toContain('agent');
    // what this copy connects with is unchanged (only where it is written)
    const after = json(ok(dsg(t.proj, t.env, 'validate-config', '--no-backend', '--json')).stdout);
    for (const k of ['name', 'repository.root', 'repository.user', 'repository.port', 'repository.agent'])
      expect(setting(after.settings, k).value, k).toEqual(setting(before.settings, k).value);
    expect(setting(after.settings, 'repository.user').source).toBe('local');
    // and a second --fix has nothing to do
    const again = ok(dsg(t.proj, t.env, 'validate-config', '--no-backend', '--fix', '--json'));
    expect(json(again.stdout).fix).toEqual({ moved: [], kept: [], dropped: [] });
  });

  it('a copy with its own local config: the shared keys are removed, not moved (they may be a teammate’s)', () => {
    const localYaml = 'name: demo\nrepository:\n  type: posix\n  host: localhost\n  root: ROOT\n  user: ana\n';
    const t = setup(SHARED, { local: localYaml });
    const localFile = path.join(t.proj, '.dsg', 'config.local.yml');
    const r = ok(dsg(t.proj, t.env, 'validate-config', '--no-backend', '--fix', '--json'));
    const d = json(r.stdout);
    expect(d.fix?.moved).toEqual([]);
    expect(d.fix?.kept.map((k) => k.key)).toEqual(['repository.port', 'repository.user']);
    expect(d.fix?.kept[1]?.reason).toBe('.dsg/config.local.yml sets its own ("ana")');
    expect(d.fix?.dropped.map((k) => k.key)).toEqual(['repository.agent']);
    expect(read(path.join(t.proj, '.dsgconfig.yml'))).not.toMatch(/user:|port:|agent:/);
    expect(read(localFile)).toContain('user: ana');
    expect(read(localFile)).not.toContain('bob');
    expect(setting(d.settings, 'repository.user')).toMatchObject({ value: 'ana', source: 'local' });
  });

  it('a clean config: nothing changes, nothing is created', () => {
    const clean = (root: string) =>
      `# ours\nname: demo\nrepository:\n  type: posix\n  host: localhost\n  root: ${root}   # kept\ndata_dirs: [ input ]\n`;
    const t = setup(clean);
    const file = path.join(t.proj, '.dsgconfig.yml');
    const bytes = read(file);
    const r = ok(dsg(t.proj, t.env, 'validate-config', '--no-backend', '--fix'));
    expect(r.stdout).toContain('nothing to move (.dsgconfig.yml has no per-person keys)');
    expect(read(file)).toBe(bytes);
    expect(existsSync(path.join(t.proj, '.dsg')), 'no local config written').toBe(false);
  });

  it('a flow mapping is rewritten through the YAML document, other keys kept', () => {
    const flow = (root: string) =>
      `name: demo\nrepository: {type: posix, host: localhost, root: ${root}, user: bob}\ndata_dirs: [input]\n`;
    const t = setup(flow);
    ok(dsg(t.proj, t.env, 'validate-config', '--no-backend', '--fix'));
    const text = read(path.join(t.proj, '.dsgconfig.yml'));
    expect(text).not.toContain('bob');
    expect(text).toContain(`root: ${t.repos}`);
    expect(read(path.join(t.proj, '.dsg', 'config.local.yml'))).toContain('user: bob');
  });

  it('an invalid .dsgconfig.yml is refused with its line, nothing written', () => {
    const bad = (root: string) => `name: demo\nrepository:\n  type: posix\n  root: ${root}\n  port: many\n`;
    const t = setup(bad);
    const file = path.join(t.proj, '.dsgconfig.yml');
    const bytes = read(file);
    const r = dsg(t.proj, t.env, 'validate-config', '--no-backend', '--fix');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('.dsgconfig.yml:5: repository.port: expected a port number');
    expect(read(file)).toBe(bytes);
    expect(existsSync(path.join(t.proj, '.dsg'))).toBe(false);
  });

  it('outside a project --fix is the usual config error', () => {
    const sb = sandbox(USER_YAML);
    const dir = mkdtempSync(path.join(sb.dir, 'none-'));
    const r = dsg(dir, sb.env, 'validate-config', '--no-backend', '--fix');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('hint:');
  });
});
