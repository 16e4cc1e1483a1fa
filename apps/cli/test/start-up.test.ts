import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { BIN, dsg, sandbox, write } from './helpers.js';

/*
 * What a start-up loads, recorded by module hooks: `dsg --version` and a
 * command outside a project must not load the chunks holding the transports,
 * the backends, SSH, YAML or the schemas (that is what made them slow).
 */
const recorder = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'register-load-recorder.mjs');

function loads(
  cwd: string,
  env: NodeJS.ProcessEnv,
  ...args: string[]
): { code: number; stderr: string; files: string[] } {
  const list = path.join(cwd, `loads-${args.join('-')}.txt`);
  const r = spawnSync('node', ['--import', recorder, BIN, ...args], {
    cwd,
    env: { ...env, DSG_TEST_LOADS: list },
    encoding: 'utf8',
    timeout: 120_000,
  });
  const files = readFileSync(list, 'utf8')
    .split('\n')
    .filter((u) => u && !u.endsWith('register-load-recorder.mjs'))
    .map((u) => fileURLToPath(u));
  return { code: r.status ?? -1, stderr: r.stderr, files };
}

// what marks a chunk as heavy: code of the libraries a quick answer never needs
const HEAVY = [/class ZodError|\$ZodError/, /ssh-userauth|SSH_MSG_/, /YAMLParseError/, /zfs (create|snapshot)/];
const heavy = (file: string): boolean => {
  const text = readFileSync(file, 'utf8');
  return HEAVY.some((re) => re.test(text));
};

/** A project with one file, synced to a posix repository on this machine. */
function localProject(): { sb: ReturnType<typeof sandbox>; dir: string } {
  const sb = sandbox();
  const dir = path.join(sb.dir, 'p');
  write(path.join(dir, 'input', 'a.txt'), 'a\n');
  const root = path.join(sb.dir, 'repos');
  const init = dsg(dir, sb.env, 'init', '--host', 'localhost', '--repo-type', 'posix', '--repo-path', root);
  expect(init.code, init.stderr).toBe(0);
  return { sb, dir };
}

describe('start-up of the bundled dsg', () => {
  it('the bundle is what the package runs: --version loads the entry and a few KiB of helpers, no command code', () => {
    const sb = sandbox();
    const r = loads(sb.dir, sb.env, '--version');
    expect(r.code).toBe(0);
    expect(r.files[0]).toBe(BIN);
    expect(r.files.filter(heavy)).toEqual([]);
    expect(r.files.reduce((n, f) => n + statSync(f).size, 0)).toBeLessThan(16 * 1024);
  });

  it('a command outside a project fails with its hint before loading the transports, backends, YAML or schemas', () => {
    const sb = sandbox();
    const r = loads(sb.dir, sb.env, 'status');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/no \.dsgconfig\.yml found[\s\S]*hint: Run `dsg init`/);
    expect(r.files.length).toBeGreaterThan(1);
    expect(r.files.filter(heavy)).toEqual([]);
  });

  it('the heavy chunks exist, and a command inside a project loads them (the check above can fail)', () => {
    const sb = sandbox();
    const r = loads(sb.dir, sb.env, 'validate-config');
    expect(r.files.filter(heavy).length).toBeGreaterThan(0);
  });

  it('a status of a repository on this machine never loads the SSH library', () => {
    const { sb, dir } = localProject();
    const r = loads(dir, sb.env, 'status');
    expect(r.code, r.stderr).toBe(0);
    const ssh = (f: string): boolean => /SSH_MSG_|ssh-userauth/.test(readFileSync(f, 'utf8'));
    expect(r.files.filter(ssh)).toEqual([]);
    // the bundle has an SSH chunk, for other repositories: the check can fail
    const chunks = path.join(path.dirname(BIN), 'chunks');
    expect(readdirSync(chunks).some((f) => ssh(path.join(chunks, f)))).toBe(true);
  });

  it('only a command that writes or reads an archive loads the LZ4 binding', () => {
    const { sb, dir } = localProject();
    const lz4 = (files: string[]): string[] => files.filter((f) => f.includes(`${path.sep}lz4-napi`));
    for (const args of [['status'], ['status', '--offline'], ['list-files']]) {
      const r = loads(dir, sb.env, ...args);
      expect(r.code, r.stderr).toBe(0);
      expect(lz4(r.files), args.join(' ')).toEqual([]);
    }
    // a sync archives the new snapshot's manifest: the check sees the binding when it loads
    write(path.join(dir, 'input', 'b.txt'), 'b\n');
    const sync = loads(dir, sb.env, 'sync', '-m', 'b');
    expect(sync.code, sync.stderr).toBe(0);
    expect(lz4(sync.files).length).toBeGreaterThan(0);
  });

  it('a reader that closed the pipe (dsg … | head) ends dsg quietly with the command’s own exit code, not an EPIPE trace', async () => {
    const sb = sandbox();
    // the read end is closed before dsg writes its first byte: every write of --help fails with EPIPE
    const child = spawn('node', [BIN, '--help'], { cwd: sb.dir, env: sb.env, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.destroy();
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(stderr).not.toMatch(/EPIPE|Unhandled/);
    expect(code).toBe(0); // --help finished; a command cut off before it ends exits 141, as after SIGPIPE
  });
});
