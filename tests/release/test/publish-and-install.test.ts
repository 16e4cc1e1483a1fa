/**
 * The release as a maintainer runs it, against the real (local) registry the
 * test environment starts, then the packages used as their users would: a
 * fresh directory with only Node and npm, `npm i` from that registry, and the
 * commands the READMEs show. The release runs in a copy of this checkout
 * (tracked and untracked files, as a commit would hold them) with a
 * throwaway prerelease version, so nothing in the repository changes.
 */
import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, teardownDataset, requireRegistry, requireSsh, requireZfs } from '@dsg/testenv';

const reg = requireRegistry();
const ssh = requireSsh();
const zfs = requireZfs();

const CONSUMERS = path.join(REPO_ROOT, 'tests', 'release', 'consumers');
const TS_VERSION = (JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as Pkg).devDependencies![
  'typescript'
]!;

interface Pkg {
  name: string;
  version: string;
  private?: boolean;
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
}

interface Run {
  code: number;
  out: string;
  stdout: string;
}

function run(cmd: string, args: string[], opts: SpawnSyncOptions): Run {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 900_000, ...opts });
  const stdout = String(r.stdout ?? '');
  return { code: r.status ?? -1, stdout, out: `${stdout}${String(r.stderr ?? '')}${r.error ? String(r.error) : ''}` };
}

function ok(r: Run, what: string): Run {
  if (r.code !== 0) throw new Error(`${what}: exit ${r.code}\n${r.out.slice(-4000)}`);
  return r;
}

const work = mkdtempSync(path.join(os.tmpdir(), 'dsg-release-'));
// the agent's login user reads the agent installed under here
chmodSync(work, 0o755);
const repo = path.join(work, 'repo');
const npmrc = path.join(work, 'npmrc');
let publicPackages: Pkg[] = [];
let version = '';

/** What a machine with only Node and npm has, pointed at the registry under test. */
function npmEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const home = path.join(work, 'home');
  mkdirSync(home, { recursive: true });
  return {
    PATH: `${path.dirname(process.execPath)}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
    HOME: home,
    npm_config_userconfig: npmrc,
    npm_config_cache: path.join(work, 'npm-cache'),
    npm_config_update_notifier: 'false',
    npm_config_fund: 'false',
    npm_config_audit: 'false',
    NO_COLOR: '1',
    ...extra,
  };
}

const installed = new Map<string, string>();

/** A global install into its own prefix (once per package), with exactly the README's command. */
function globalInstall(pkg: string): string {
  const prefix = path.join(work, `prefix-${pkg.replace(/\W/g, '-')}`);
  if (installed.has(pkg)) return prefix;
  ok(run('npm', ['i', '-g', pkg], { cwd: work, env: npmEnv({ npm_config_prefix: prefix }) }), `npm i -g ${pkg}`);
  installed.set(pkg, prefix);
  return prefix;
}

/**
 * The environment without npm's settings: run under pnpm or turbo, it carries
 * npm_config_registry (the public registry) and more, which would win over the
 * npmrc written here and send a publish to the public registry.
 */
function withoutNpmConfig(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([k]) => !/^npm_config_/i.test(k)));
}

/** The files a commit of this checkout would hold: tracked, plus untracked ones git does not ignore. */
function copyCheckout(to: string): void {
  const files = ok(run('git', ['ls-files', '-z', '-co', '--exclude-standard'], { cwd: REPO_ROOT }), 'git ls-files')
    .stdout.split('\0')
    .filter(Boolean);
  for (const f of files) {
    const src = path.join(REPO_ROOT, f);
    if (!existsSync(src)) continue; // deleted in the work tree, not yet in the index
    mkdirSync(path.dirname(path.join(to, f)), { recursive: true });
    copyFileSync(src, path.join(to, f));
  }
}

const git = (...args: string[]): Run =>
  ok(
    run('git', ['-c', 'user.name=dsg release test', '-c', 'user.email=release@dsg.invalid', ...args], { cwd: repo }),
    `git ${args[0]}`,
  );

describe.skipIf(!reg)('release through a real npm registry', () => {
  const datasets: string[] = [];
  afterAll(() => {
    for (const d of datasets) teardownDataset(d);
  });

  beforeAll(() => {
    const url = new URL(reg!.url);
    writeFileSync(npmrc, `registry=${reg!.url}\n//${url.host}${url.pathname}:_authToken=${reg!.token}\n`, {
      mode: 0o600,
    });
    copyCheckout(repo);
    // one changeset of this run's own for every public package, so there is always something to
    // release: the commit right after a release has no pending changeset, and it must pass too
    const publicNames = ['packages', 'apps']
      .flatMap((top) => readdirSync(path.join(repo, top)).map((d) => path.join(repo, top, d, 'package.json')))
      .filter((f) => existsSync(f))
      .map((f) => JSON.parse(readFileSync(f, 'utf8')) as Pkg)
      .filter((p) => !p.private)
      .map((p) => p.name);
    writeFileSync(
      path.join(repo, '.changeset', 'release-test-run.md'),
      `---\n${publicNames.map((n) => `'${n}': patch`).join('\n')}\n---\n\nThe release test's throwaway release.\n`,
    );
    git('init', '-q', '-b', 'main');
    git('add', '-A');
    git('commit', '-q', '-m', 'the checkout under test');
    // the maintainer's flow, in the copy: versions from the pending changesets (here as a
    // snapshot prerelease, so every run publishes a version no one else has), then `pnpm release`
    const env = {
      ...withoutNpmConfig(process.env),
      npm_config_userconfig: npmrc,
      // explicit: never the public registry, whatever the environment says
      npm_config_registry: reg!.url,
      TURBO_TELEMETRY_DISABLED: '1',
      TURBO_NO_UPDATE_NOTIFIER: '1',
      DO_NOT_TRACK: '1',
    };
    ok(
      run('pnpm', ['install', '--offline', '--frozen-lockfile', '--reporter=silent'], { cwd: repo, env }),
      'pnpm install',
    );
    ok(run('pnpm', ['changeset', 'version', '--snapshot', 'ci'], { cwd: repo, env }), 'changeset version --snapshot');
    ok(run('pnpm', ['release'], { cwd: repo, env }), 'pnpm release');
    publicPackages = readdirSync(path.join(repo, 'packages'))
      .map((d) => path.join(repo, 'packages', d))
      .concat([path.join(repo, 'apps', 'cli'), path.join(repo, 'apps', 'agent')])
      .map((d) => JSON.parse(readFileSync(path.join(d, 'package.json'), 'utf8')) as Pkg)
      .filter((p) => !p.private);
    version = publicPackages.find((p) => p.name === '@dsg/cli')!.version;
  });

  it('publishes every public package at one prerelease version, with real versions for its workspace dependencies', () => {
    expect(version).toMatch(/^\d+\.\d+\.\d+-ci\.\d{14}$/);
    expect(publicPackages.map((p) => p.name).sort()).toEqual([
      '@dsg/agent',
      '@dsg/cli',
      '@dsg/client-fs',
      '@dsg/contracts',
      '@dsg/coordinator',
      '@dsg/dirstat',
      '@dsg/manifest',
      '@dsg/posix-ops',
      '@dsg/transports',
      '@dsg/zfs-ops',
    ]);
    for (const p of publicPackages) {
      expect(p.version).toBe(version);
      const view = ok(run('npm', ['view', `${p.name}@${version}`, '--json'], { cwd: work, env: npmEnv() }), 'npm view');
      const meta = JSON.parse(view.stdout) as Pkg & { dist: { fileCount: number } };
      expect(meta.version).toBe(version);
      for (const [dep, range] of Object.entries(meta.dependencies ?? {})) {
        expect(range, `${p.name} → ${dep}`).not.toMatch(/^workspace:/);
        if (dep.startsWith('@dsg/')) expect(range, `${p.name} → ${dep}`).toBe(version);
      }
    }
  });

  it('changeset version consumes every pending changeset into versions and changelogs; status is clean after', () => {
    git('reset', '-q', '--hard', 'HEAD');
    git('clean', '-q', '-fd', '-e', 'node_modules');
    const pending = readdirSync(path.join(repo, '.changeset')).filter((f) => f.endsWith('.md') && f !== 'README.md');
    expect(pending.length).toBeGreaterThan(0);
    const env = { ...withoutNpmConfig(process.env), npm_config_userconfig: npmrc, npm_config_registry: reg!.url };
    ok(run('pnpm', ['changeset', 'version'], { cwd: repo, env }), 'changeset version');
    expect(readdirSync(path.join(repo, '.changeset')).filter((f) => f.endsWith('.md') && f !== 'README.md')).toEqual(
      [],
    );
    for (const dir of ['packages/manifest', 'packages/zfs-ops', 'apps/cli', 'apps/agent']) {
      const log = readFileSync(path.join(repo, dir, 'CHANGELOG.md'), 'utf8');
      const pkg = JSON.parse(readFileSync(path.join(repo, dir, 'package.json'), 'utf8')) as Pkg;
      expect(log).toContain(`## ${pkg.version}`);
      expect(pkg.version).not.toContain('-');
    }
    // private packages (tests, bench, tooling) get no version and no changelog
    expect(existsSync(path.join(repo, 'tests', 'reliability', 'CHANGELOG.md'))).toBe(false);
    git('add', '-A');
    git('commit', '-q', '-m', 'version packages');
    const status = run('pnpm', ['changeset', 'status'], { cwd: repo, env });
    expect(status.out).not.toMatch(/error/i);
    expect(status.code).toBe(0);
  });

  it('npm i -g @dsg/cli gives a dsg whose demo passes and whose README example syncs to a posix repository', () => {
    const prefix = globalInstall('@dsg/cli');
    const env = npmEnv({ PATH: `${prefix}/bin:${npmEnv().PATH}` });
    expect(ok(run('dsg', ['--version'], { cwd: work, env }), 'dsg --version').stdout.trim()).toBe(version);
    // the published @dsg/dirstat carries the add-on built for this platform, and the installed CLI loads it
    const dirstat = path.join(prefix, 'lib', 'node_modules', '@dsg', 'cli', 'node_modules', '@dsg', 'dirstat');
    const which = ok(
      run(
        process.execPath,
        [
          '--input-type=module',
          '-e',
          `import(${JSON.stringify(path.join(dirstat, 'dist', 'index.js'))}).then((m) => console.log(m.lister()))`,
        ],
        { cwd: work, env },
      ),
      'the installed lister',
    );
    expect(which.stdout.trim()).toBe(process.platform === 'linux' ? 'native' : 'js');
    const demo = ok(run('dsg', ['demo'], { cwd: work, env }), 'dsg demo');
    expect(demo.stdout).toContain('all steps passed');
    // the README's example, as a user pastes it (its repository moved into this test's directory)
    const readme = readFileSync(path.join(REPO_ROOT, 'apps', 'cli', 'README.md'), 'utf8');
    const example = /## Example \(no server needed\)\n\n```sh\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(example).toBeTruthy();
    const repos = path.join(work, 'readme-repos');
    const script = `set -e\n${example!.replaceAll('/tmp/dsg-repos', repos)}`;
    const r = ok(run('bash', ['-c', script], { cwd: work, env }), 'the README example');
    expect(r.stdout).toMatch(/To upload[\s\S]*input\/a\.csv/);
    expect(readFileSync(path.join(env.HOME!, 'survey-copy', 'input', 'a.csv'), 'utf8')).toBe(
      'id,value\n1,alpha\n2,beta\n',
    );
  });

  it.skipIf(!ssh)(
    'npm i -g @dsg/agent gives a dsg-agent that dsg and a @dsg/transports program reach over the real sshd',
    () => {
      const agentPrefix = globalInstall('@dsg/agent');
      const agent = path.join(agentPrefix, 'bin', 'dsg-agent');
      expect(ok(run(agent, ['--version'], { cwd: work, env: npmEnv() }), 'dsg-agent --version').stdout.trim()).toBe(
        version,
      );
      // the single file the README offers instead: nothing beside it but node
      const single = path.join(work, 'single-file');
      mkdirSync(single);
      ok(run('npm', ['pack', '@dsg/agent'], { cwd: single, env: npmEnv() }), 'npm pack @dsg/agent');
      const tgz = readdirSync(single).find((f) => /^dsg-agent-.*\.tgz$/.test(f))!;
      ok(run('tar', ['-xzf', tgz, 'package/dist/dsg-agent.mjs'], { cwd: single }), 'tar');
      const alone = path.join(work, 'dsg-agent.mjs');
      copyFileSync(path.join(single, 'package', 'dist', 'dsg-agent.mjs'), alone);
      expect(ok(run('node', [alone, '--version'], { cwd: work, env: npmEnv() }), 'the single file').stdout.trim()).toBe(
        version,
      );
      // the installed client, to a posix repository on "the server" through the installed agent
      const cli = globalInstall('@dsg/cli');
      const env = npmEnv({ PATH: `${cli}/bin:${npmEnv().PATH}`, DSG_CONFIG_HOME: path.join(work, 'ssh-cfg') });
      mkdirSync(env.DSG_CONFIG_HOME!, { recursive: true });
      writeFileSync(
        path.join(env.DSG_CONFIG_HOME!, 'dsg.yml'),
        `user_id: ana@example.org\nuser_name: Ana\nssh:\n  key_path: ${ssh!.key}\n  known_hosts: ${ssh!.knownHosts}\n`,
      );
      const server = path.join(work, 'server-repos');
      mkdirSync(server);
      const project = path.join(work, 'ssh-project');
      mkdirSync(path.join(project, 'input'), { recursive: true });
      writeFileSync(path.join(project, 'input', 'a.csv'), 'id\n1\n');
      const sshArgs = ['--port', String(ssh!.port), '--ssh-user', ssh!.user, '--agent', agent];
      ok(
        run(
          'dsg',
          ['init', '--host', ssh!.host, '--repo-type', 'posix', '--repo-path', server, '--repo-name', 'p', ...sshArgs],
          { cwd: project, env },
        ),
        'dsg init over ssh',
      );
      const clone = path.join(work, 'ssh-clone');
      ok(
        run('dsg', ['clone', `${ssh!.host}:${server}/p`, clone, '--repo-type', 'posix', ...sshArgs], {
          cwd: work,
          env,
        }),
        'dsg clone over ssh',
      );
      expect(readFileSync(path.join(clone, 'input', 'a.csv'), 'utf8')).toBe('id\n1\n');
      // a program that installed @dsg/transports alone talks to the same agent, locally and over ssh
      const out = consumer('transports', {
        DSG_AGENT: JSON.stringify([agent]),
        DSG_CONSUMER_SSH: '1',
        DSG_TEST_SSH_HOST: ssh!.host,
        DSG_TEST_SSH_PORT: String(ssh!.port),
        DSG_TEST_SSH_USER: ssh!.user,
        DSG_TEST_SSH_KEY: ssh!.key,
        DSG_TEST_SSH_KNOWN_HOSTS: ssh!.knownHosts,
      });
      expect(out).toMatchObject({ ok: true, problems: [] });
    },
  );

  it('a project that installs @dsg/manifest alone type-checks against it and uses it', () => {
    expect(consumer('manifest')).toMatchObject({ ok: true, problems: [] });
  });

  it.skipIf(!zfs)('a project that installs @dsg/zfs-ops alone type-checks against it and drives the real pool', () => {
    const name = `release-consumer-${process.pid}`;
    datasets.push(`${zfs!.pool}/${name}`);
    expect(consumer('zfs-ops', { DSG_TEST_POOL: zfs!.pool, DSG_CONSUMER_DATASET: name })).toMatchObject({
      ok: true,
      problems: [],
    });
  });

  it('the READMEs show the install commands this suite runs', () => {
    const top = readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
    const install = /## Install\n([\s\S]*?)\n## /.exec(top)?.[1] ?? '';
    for (const cmd of ['npm i -g @dsg/cli', 'npm i -g @dsg/agent', 'dsg demo']) expect(install).toContain(cmd);
    for (const name of ['manifest', 'transports', 'zfs-ops']) {
      expect(readFileSync(path.join(REPO_ROOT, 'packages', name, 'README.md'), 'utf8')).toContain(`npm i @dsg/${name}`);
    }
  });
});

/**
 * tests/release/consumers/<name>.ts in a fresh npm project that installs only
 * @dsg/<name> (plus typescript and Node's types): `tsc --noEmit` under strict
 * NodeNext, then compiled and run; its one line of JSON.
 */
function consumer(name: string, extraEnv: NodeJS.ProcessEnv = {}): unknown {
  const dir = path.join(work, `consumer-${name}`);
  mkdirSync(dir);
  writeFileSync(
    path.join(dir, 'package.json'),
    JSON.stringify({ name: `consumer-${name}`, private: true, type: 'module' }),
  );
  copyFileSync(path.join(CONSUMERS, `${name}.ts`), path.join(dir, 'index.ts'));
  writeFileSync(
    path.join(dir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: { target: 'ES2022', module: 'NodeNext', strict: true, outDir: 'dist', types: ['node'] },
      files: ['index.ts'],
    }),
  );
  const env = npmEnv();
  ok(
    run('npm', ['i', `@dsg/${name}@${version}`, `typescript@${TS_VERSION}`, '@types/node@^20.19.0'], { cwd: dir, env }),
    `npm i @dsg/${name}`,
  );
  ok(
    run('node', ['node_modules/typescript/bin/tsc', '--noEmit', '-p', '.'], { cwd: dir, env }),
    `tsc --noEmit (${name})`,
  );
  ok(run('node', ['node_modules/typescript/bin/tsc', '-p', '.'], { cwd: dir, env }), `tsc (${name})`);
  const r = ok(run('node', ['dist/index.js'], { cwd: dir, env: { ...env, ...extraEnv } }), `the ${name} consumer`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}
