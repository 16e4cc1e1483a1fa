// Benchmark (not a test): peak RSS of the dsg CLI on a project of many tiny
// files, synced to a posix repository on this machine (in-process agent), the
// way a user runs it: a first sync (`init`), a no-change `sync`, a `sync`
// with 10 changed files, and a `status`. Each command runs under GNU time.
//
// Usage (after a build):
//   node bench/micro/sync-memory.mjs [files] [--dirs N] [--keep] [--node-flag F]...
//     files        entries in the project (default 100000)
//     --dirs N     spread over N directories (default files / 1000)
//     --keep       leave the work directory (its path is printed)
//     --node-flag  passed to node before the CLI, e.g. --node-flag=--heap-prof
//   DSG_MEMORY_LOG=1 makes the CLI print process.memoryUsage() at each step of
//   a sync (stderr), where the coordinator logs it.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const { values: opt, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    dirs: { type: 'string' },
    keep: { type: 'boolean', default: false },
    'node-flag': { type: 'string', multiple: true, default: [] },
    work: { type: 'string' },
  },
});
const files = Number(positionals[0] ?? 100_000);
const dirs = Number(opt.dirs ?? Math.max(1, Math.ceil(files / 1000)));

/** The CLI entry point package.json's `bin` names (a bundle or tsc's output). */
export function cliEntry(root = repoRoot) {
  const pkg = JSON.parse(readFileSync(path.join(root, 'apps/cli/package.json'), 'utf8'));
  const bin = typeof pkg.bin === 'string' ? pkg.bin : pkg.bin.dsg;
  return path.join(root, 'apps/cli', bin);
}

/** `files` files of a few bytes each (unique content: the file's number) in `dirs` directories under input/. */
export function makeTinyFiles(project, { files, dirs }) {
  const per = Math.ceil(files / dirs);
  for (let d = 0; d < dirs; d++) {
    const dir = path.join(project, 'input', `d${String(d).padStart(4, '0')}`);
    mkdirSync(dir, { recursive: true });
    for (let i = d * per; i < Math.min(files, (d + 1) * per); i++) writeFileSync(path.join(dir, `f${i}.txt`), `${i}\n`);
  }
}

/** Rewrite `count` of those files with new content (round `round` picks which). */
export function changeTinyFiles(project, { files, dirs, count, round }) {
  const per = Math.ceil(files / dirs);
  for (let k = 0; k < count; k++) {
    const i = (round * 7919 + k * Math.floor(files / count)) % files;
    const d = Math.floor(i / per);
    writeFileSync(
      path.join(project, 'input', `d${String(d).padStart(4, '0')}`, `f${i}.txt`),
      `${i} changed ${round}\n`,
    );
  }
}

/** Runs `node [flags] <cli> ...args` under GNU time: seconds, peak RSS (MiB), stderr. */
export function dsgTimed(project, args, { env, nodeFlags = [] } = {}) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync('/usr/bin/time', ['-f', '%M', 'node', ...nodeFlags, cliEntry(), ...args], {
    cwd: project,
    env,
    encoding: 'utf8',
    maxBuffer: 1 << 28,
  });
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const lines = (r.stderr || '').trim().split('\n');
  const kib = Number(lines.at(-1));
  if (r.status !== 0) throw new Error(`dsg ${args.join(' ')} → exit ${r.status}\n${r.stderr.slice(-3000)}`);
  return { secs, rssMiB: kib / 1024, stderr: lines.slice(0, -1).join('\n') };
}

/** A project under `work` whose repository is a posix root on this machine; returns paths and the env to run dsg with. */
export function localProject(work, name) {
  const project = path.join(work, name);
  const repos = path.join(work, 'repos');
  const conf = path.join(work, 'dsgconf');
  mkdirSync(project, { recursive: true });
  mkdirSync(repos, { recursive: true });
  mkdirSync(conf, { recursive: true });
  writeFileSync(path.join(conf, 'dsg.yml'), 'user_name: Bench\nuser_id: bench@example.org\n');
  writeFileSync(
    path.join(project, '.dsgconfig.yml'),
    `name: ${name}\nrepository:\n  type: posix\n  root: ${repos}\ndata_dirs: [input]\n`,
  );
  const env = { ...process.env, DSG_CONFIG_HOME: conf, NO_COLOR: '1' };
  return { project, repos, env };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const work = opt.work ? path.resolve(opt.work) : mkdtempSync(path.join(os.tmpdir(), 'dsg-mem-'));
  const { project, env } = localProject(work, 'mem');
  const t0 = Date.now();
  makeTinyFiles(project, { files, dirs });
  console.log(`${files} files in ${dirs} dirs generated in ${((Date.now() - t0) / 1000).toFixed(1)} s (${work})`);
  const nodeFlags = opt['node-flag'];
  const step = (label, args) => {
    const r = dsgTimed(project, args, { env, nodeFlags });
    console.log(
      `${label.padEnd(22)} ${r.secs.toFixed(2).padStart(7)} s  peak RSS ${r.rssMiB.toFixed(0).padStart(5)} MiB`,
    );
    if (r.stderr.trim()) console.log(r.stderr.replace(/^/gm, '    '));
    return r;
  };
  try {
    step('init', ['init', '-m', 'bench', '--quiet']);
    step('sync (no change)', ['sync', '-m', 'none', '--quiet']);
    changeTinyFiles(project, { files, dirs, count: 10, round: 1 });
    step('sync (10 changed)', ['sync', '-m', 'ten', '--quiet']);
    step('status (no change)', ['status', '--quiet']);
  } finally {
    if (!opt.keep) rmSync(work, { recursive: true, force: true });
    else console.log(`kept ${work}`);
  }
}
