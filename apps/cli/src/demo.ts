#!/usr/bin/env node
/**
 * The local demo (`bash scripts/demo.sh`): a project with sample data, a
 * posix repository in a temp dir, and two working directories, driven by the
 * built `dsg` binary exactly as a user would type it. Prints each command and
 * its output; exits 0 only if every step did what it should.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

// the binary as it ships (the bundle the package's `bin` names), beside this file in dist/
const BIN = path.join(path.dirname(fileURLToPath(import.meta.url)), 'bin', 'dsg.mjs');
const keep = process.argv.includes('--keep');
const base = mkdtempSync(path.join(os.tmpdir(), 'dsg-demo-'));
const env: NodeJS.ProcessEnv = { ...process.env, DSG_CONFIG_HOME: path.join(base, 'config'), NO_COLOR: '1' };
const repos = path.join(base, 'repos');
const alice = path.join(base, 'alice', 'survey');
const bob = path.join(base, 'bob');
let failed = 0;

function put(file: string, content: string): void {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, content);
}

function step(
  title: string,
  cwd: string,
  args: string[],
  check: (out: string) => boolean,
  asUser = 'alice@example.org',
): string {
  writeFileSync(path.join(base, 'config', 'dsg.yml'), `user_id: ${asUser}\nuser_name: ${asUser.split('@')[0]}\n`);
  console.log(`\n── ${title}`);
  console.log(
    `$ cd ${path.relative(base, cwd) || '.'} && dsg ${args.map((a) => (/[\s"']/.test(a) ? JSON.stringify(a) : a)).join(' ')}`,
  );
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd, env, encoding: 'utf8' });
  const out = (r.stdout + r.stderr).trimEnd();
  if (out) console.log(out.replace(/^/gm, '  '));
  const ok = r.status === 0 && check(r.stdout);
  if (!ok) {
    failed++;
    console.log(`  ✗ step failed (exit ${r.status})`);
  } else console.log('  ✓');
  return r.stdout;
}

mkdirSync(path.join(base, 'config'), { recursive: true });
mkdirSync(repos);
put(path.join(alice, 'input', 'interviews.csv'), 'id,district,year\n1,North,2019\n2,South,2020\n');
put(path.join(alice, 'input', 'codebook.txt'), 'district: where the interview took place\n');
put(path.join(alice, 'output', 'counts.csv'), 'district,n\nNorth,1\nSouth,1\n');
console.log(
  `dsg demo in ${base}\n(a project "survey" for alice, a posix repository in ${path.relative(base, repos)}/, and a second working copy for bob)`,
);

step(
  'alice creates the repository from her data (snapshot s1)',
  alice,
  ['init', '--host', 'localhost', '--repo-type', 'posix', '--repo-path', repos, '--repo-name', 'survey'],
  (o) => o.includes('at s1'),
);
put(path.join(alice, 'input', 'interviews.csv'), 'id,district,year\n1,North,2019\n2,South,2020\n3,East,2021\n');
step('alice adds an interview; status shows what would be uploaded', alice, ['status'], (o) =>
  o.includes('input/interviews.csv'),
);
step('alice syncs (snapshot s2)', alice, ['sync', '-m', 'third interview'], (o) => o.includes('s2 committed'));
step(
  'bob clones the repository',
  base,
  ['clone', `localhost:${repos}/survey`, 'bob'],
  (o) => o.includes('at s2'),
  'bob@example.org',
);
put(path.join(bob, 'output', 'counts.csv'), 'district,n\nNorth,1\nSouth,1\nEast,1\n');
step(
  'bob updates the counts and syncs back (snapshot s3)',
  bob,
  ['sync', '-m', 'counts with East'],
  (o) => o.includes('s3 committed'),
  'bob@example.org',
);
step("alice syncs and receives bob's change", alice, ['sync'], (o) => o.includes('1 downloaded'));
const counts = readFileSync(path.join(alice, 'output', 'counts.csv'), 'utf8');
if (!counts.includes('East')) {
  failed++;
  console.log("  ✗ alice's output/counts.csv does not have bob's change");
}
step('the history', alice, ['log'], (o) => ['s1', 's2', 's3'].every((s) => o.includes(s)));
step(
  'who changed output/counts.csv, and when',
  alice,
  ['blame', 'output/counts.csv'],
  (o) => o.includes('bob@example.org') && o.includes('alice@example.org'),
);
step(
  'show the first version of input/interviews.csv (to stdout: nothing lands in a data dir)',
  alice,
  ['snapfetch', 'input/interviews.csv', '--snapshot', 's1', '-o', '-'],
  (o) => o === 'id,district,year\n1,North,2019\n2,South,2020\n',
);
step('check the hash chain of every snapshot', alice, ['validate-chain'], (o) => o.includes('intact'));

console.log(failed ? `\n${failed} step(s) FAILED` : '\nall steps passed');
if (keep) console.log(`(kept ${base})`);
else rmSync(base, { recursive: true, force: true });
process.exitCode = failed ? 1 : 0;
