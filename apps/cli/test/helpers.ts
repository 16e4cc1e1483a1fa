import { spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const CLI_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
import { AGENT_BUNDLE as AGENT, CLI_BIN as BIN } from '@dsg/testenv';

export { AGENT, BIN };

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** A sandbox: its own HOME and DSG_CONFIG_HOME with a user config. */
export function sandbox(userYaml = 'user_id: ana@example.org\nuser_name: Ana\n'): {
  dir: string;
  env: NodeJS.ProcessEnv;
} {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'dsg-cli-test-'));
  mkdirSync(path.join(dir, 'home'));
  mkdirSync(path.join(dir, 'cfg'));
  writeFileSync(path.join(dir, 'cfg', 'dsg.yml'), userYaml);
  const env: NodeJS.ProcessEnv = {
    PATH: process.env['PATH'],
    HOME: path.join(dir, 'home'),
    DSG_CONFIG_HOME: path.join(dir, 'cfg'),
    NO_COLOR: '1',
  };
  return { dir, env };
}

/** Run the BUILT binary as a user would. */
export function dsg(cwd: string, env: NodeJS.ProcessEnv, ...args: string[]): RunResult {
  const r = spawnSync('node', [BIN, ...args], { cwd, env, encoding: 'utf8', timeout: 300_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** The run's result when it exited 0; otherwise an error carrying its exit code and output. */
export function ok(r: RunResult): RunResult {
  if (r.code !== 0) throw new Error(`exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}

/** path → content of every file under dir (for "nothing changed" checks). */
export function listing(dir: string, skip: (rel: string) => boolean = () => false): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string): void => {
    for (const n of readdirSync(d)) {
      const full = path.join(d, n);
      const rel = path.relative(dir, full);
      if (skip(rel)) continue;
      const st = statSync(full);
      if (st.isDirectory()) walk(full);
      else out[rel] = readFileSync(full).toString('base64');
    }
  };
  walk(dir);
  return out;
}

export function write(file: string, content: string): void {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, content);
}
