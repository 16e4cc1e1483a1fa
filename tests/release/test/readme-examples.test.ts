/**
 * The example program in each package README (its "## Example" TypeScript
 * block) is compiled under strict NodeNext against this checkout's built
 * packages, and run where it needs no server: an example that drifts from the
 * API fails here, not in a user's editor. (The published packages are checked
 * the same way, from the registry, by publish-and-install.test.ts.)
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '@dsg/testenv';

const here = path.dirname(fileURLToPath(import.meta.url));
const TSC = createRequire(import.meta.url).resolve('typescript/bin/tsc');
// inside this package, so `@dsg/*` resolve through its node_modules as a consumer's would
const scratch = path.join(here, '..', 'test-results', 'readme-examples');

/** The README's example program: the first ```ts block after "## Example". */
function example(readme: string): string {
  const text = readFileSync(readme, 'utf8');
  const code = /\n## Example[^\n]*\n[\s\S]*?```ts\n([\s\S]*?)```/.exec(text)?.[1];
  if (!code) throw new Error(`${readme}: no "## Example" TypeScript block`);
  return code;
}

const PACKAGES = ['contracts', 'dirstat', 'manifest', 'posix-ops', 'client-fs', 'coordinator', 'transports', 'zfs-ops'];
const readme = (pkg: string) => path.join(REPO_ROOT, 'packages', pkg, 'README.md');

/** Every example in one tsc run (one program each; tsc starts once); the emitted programs. */
function compileAll(): Map<string, string> {
  mkdirSync(scratch, { recursive: true });
  const dir = mkdtempSync(path.join(scratch, 'run-'));
  for (const pkg of PACKAGES) writeFileSync(path.join(dir, `${pkg}.ts`), example(readme(pkg)));
  writeFileSync(
    path.join(dir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: { target: 'ES2022', module: 'NodeNext', strict: true, outDir: 'out', types: ['node'] },
      files: PACKAGES.map((p) => `${p}.ts`),
    }),
  );
  writeFileSync(path.join(dir, 'package.json'), '{"type":"module","private":true}');
  const r = spawnSync(process.execPath, [TSC, '-p', dir], { encoding: 'utf8' });
  if (r.status !== 0 || r.stdout + r.stderr !== '')
    throw new Error(`tsc of the README examples:\n${r.stdout}${r.stderr}`);
  return new Map(PACKAGES.map((p) => [p, path.join(dir, 'out', `${p}.js`)]));
}

function runExample(program: string, args: string[], cwd: string): string {
  const r = spawnSync(process.execPath, [program, ...args], { cwd, encoding: 'utf8', timeout: 300_000 });
  if (r.status !== 0) throw new Error(`exit ${r.status}\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

const temp = () => mkdtempSync(path.join(os.tmpdir(), 'dsg-readme-example-'));

describe('package README examples compile against the API and run', () => {
  let programs = new Map<string, string>();
  beforeAll(() => {
    programs = compileAll();
  });
  it('contracts: screens a safe and an escaping path', () => {
    const out = runExample(programs.get('contracts')!, ['input/a.csv', '../etc/passwd'], temp());
    expect(out).toContain('input/a.csv');
    expect(out).toContain('../etc/passwd');
  });

  it('dirstat: lists a directory with sizes and times, natively on Linux', () => {
    const dir = temp();
    writeFileSync(path.join(dir, 'a.csv'), 'id\n1\n');
    mkdirSync(path.join(dir, 'sub'));
    const out = runExample(programs.get('dirstat')!, [dir], dir);
    expect(out).toMatch(/^a\.csv 5 \d{4}-\d\d-\d\dT[\d:.]+Z\n(native|js)\n$/);
    if (process.platform === 'linux') expect(out).toMatch(/native\n$/);
  });

  it('manifest: scans a directory and checks the chain it wrote', () => {
    const dir = temp();
    mkdirSync(path.join(dir, 'input'));
    mkdirSync(path.join(dir, 'output'));
    writeFileSync(path.join(dir, 'input', 'a.csv'), 'id\n1\n');
    writeFileSync(path.join(dir, 'output', 'b.txt'), 'b\n');
    // entries, the snapshot hash, the byte round trip, the chain check
    expect(runExample(programs.get('manifest')!, [dir], dir)).toMatch(/^2 [0-9a-f]{16} true \{ ok: true \}\n$/);
  });

  // what each program prints, as its README's comments say
  it.each([
    ['posix-ops', [/→ s1/, /s1 /, /'demo'/]],
    ['client-fs', [/^new$/m, /'a\.csv'/]],
    ['coordinator', [/snapshot s1 \[ 'input\/a\.csv' \]/]],
  ] as const)('%s: runs on a fresh directory', (pkg, expected) => {
    const dir = path.join(temp(), 'target');
    const out = runExample(programs.get(pkg)!, [dir], path.dirname(dir));
    for (const e of expected) expect(out).toMatch(e);
  });

  // these need a dsg-agent or a ZFS pool: their fuller versions (consumers/) run in the release test
  it.each(['transports', 'zfs-ops'])('%s: compiles', (pkg) => {
    expect(existsSync(programs.get(pkg)!)).toBe(true);
  });
});
