// Benchmark (not a test): peak RSS of the dsg CLI on a project of many tiny
// files, synced to a posix repository on this machine (the agent runs inside
// the client), the way a user runs it: a first sync (`init`), a no-change
// `sync`, a `sync` with 10 changed files, and a `status`, each under GNU time.
// The bench's w11 (lib/wl-many-entries.mjs) measures the same over SSH too,
// and 1M entries.
//
// Usage (after a build):
//   node bench/micro/sync-memory.mjs [files] [--dirs N] [--keep] [--work DIR] [--node-flag F]...
//     files        entries in the project (default 100000)
//     --dirs N     spread over N directories (default files / 1000)
//     --keep       leave the work directory (its path is printed)
//     --node-flag  passed to node before the CLI, e.g. --node-flag=--heap-prof
//     --cli FILE   another dsg entry point than the one apps/cli/package.json names
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { dsgBin } from '../lib/common.mjs';
import { changeTinyFiles, makeTinyFiles } from '../lib/wl-many-entries.mjs';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const { values: opt, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    dirs: { type: 'string' },
    keep: { type: 'boolean', default: false },
    'node-flag': { type: 'string', multiple: true, default: [] },
    work: { type: 'string' },
    cli: { type: 'string' },
  },
});
const files = Number(positionals[0] ?? 100_000);
const dirs = Number(opt.dirs ?? Math.max(1, Math.ceil(files / 1000)));
const work = opt.work ? path.resolve(opt.work) : mkdtempSync(path.join(os.tmpdir(), 'dsg-mem-'));
const project = path.join(work, 'mem');
const repos = path.join(work, 'repos');
const conf = path.join(work, 'dsgconf');
for (const d of [project, repos, conf]) mkdirSync(d, { recursive: true });
writeFileSync(path.join(conf, 'dsg.yml'), 'user_name: Bench\nuser_id: bench@example.org\n');
writeFileSync(
  path.join(project, '.dsgconfig.yml'),
  `name: mem\nrepository:\n  type: posix\n  root: ${repos}\ndata_dirs: [input]\n`,
);
const env = { ...process.env, DSG_CONFIG_HOME: conf, NO_COLOR: '1' };

/** `node [flags] <dsg> ...args` under GNU time: seconds and peak RSS (MiB). */
function step(label, args) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(
    '/usr/bin/time',
    ['-f', '%M', 'node', ...opt['node-flag'], opt.cli ? path.resolve(opt.cli) : dsgBin({ repoRoot }), ...args],
    {
      cwd: project,
      env,
      encoding: 'utf8',
      maxBuffer: 1 << 28,
    },
  );
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const lines = (r.stderr || '').trim().split('\n');
  if (r.status !== 0) throw new Error(`dsg ${args.join(' ')} → exit ${r.status}\n${r.stderr.slice(-3000)}`);
  const rss = Number(lines.at(-1)) / 1024;
  console.log(`${label.padEnd(22)} ${secs.toFixed(2).padStart(7)} s  peak RSS ${rss.toFixed(0).padStart(5)} MiB`);
  const other = lines.slice(0, -1).join('\n').trim();
  if (other) console.log(other.replace(/^/gm, '    '));
}

const t0 = Date.now();
makeTinyFiles(project, { files, dirs });
console.log(`${files} files in ${dirs} dirs generated in ${((Date.now() - t0) / 1000).toFixed(1)} s (${work})`);
try {
  step('init', ['init', '-m', 'bench', '--quiet']);
  step('sync (no change)', ['sync', '-m', 'none', '--quiet']);
  changeTinyFiles(project, { files, dirs, count: 10, round: 1 });
  step('sync (10 changed)', ['sync', '-m', 'ten', '--quiet']);
  step('status (no change)', ['status', '--quiet']);
} finally {
  if (opt.keep) console.log(`kept ${work}`);
  else rmSync(work, { recursive: true, force: true });
}
