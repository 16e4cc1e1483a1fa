#!/usr/bin/env node
// dsg benchmarks: dsg side by side with rsync, git, restic and xxhsum on the
// same generated data in the same run. Prints medians and ratios and writes
// bench/results/latest.md. Nothing here asserts a time: it measures.
//
//   pnpm bench                 full sizes (~1 GiB research, 100k small files, 2 GiB file)
//   pnpm bench -- --quick      CI-sized
//   options: --runs N (default 5), --only w1,w2,…, --keep (leave the work dir),
//            --out FILE (where the markdown goes; a --only run writes none without it)
import { mkdirSync, rmSync, writeFileSync, existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { machine, bringUp, tearDown, ensureTools } from './lib/env.mjs';
import { makeEqualFiles, makeManySmall, makeOneLarge, makeResearch } from './lib/data.mjs';
import { workloads } from './lib/workloads.mjs';

// pnpm 10 forwards the `--` of `pnpm bench -- --quick`; drop it rather than make users learn which form works
const argv = process.argv.slice(2);
if (argv[0] === '--') argv.shift();
const { values: opt } = parseArgs({
  args: argv,
  options: {
    quick: { type: 'boolean', default: false },
    runs: { type: 'string' },
    only: { type: 'string' },
    keep: { type: 'boolean', default: false },
    out: { type: 'string' },
  },
});
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const runs = Number(opt.runs ?? 5);
const only = opt.only ? new Set(opt.only.split(',')) : null;
const sizes = opt.quick
  ? {
      research: { files: 1000, largeFiles: 2, largeSize: 16 << 20 },
      small: 10_000,
      large: 256 << 20,
      rename: { files: 100, bytes: 32 << 20 },
      resume: { files: 64, bytes: 256 << 20 },
      pool: '3G',
      zfsRepo: [1000, 10_000],
    }
  : {
      research: { files: 10_000, largeFiles: 5, largeSize: 120 << 20 },
      small: 100_000,
      large: 2 * 2 ** 30,
      rename: { files: 100, bytes: 100 << 20 },
      resume: { files: 256, bytes: 2 ** 30 },
      pool: '16G',
      zfsRepo: [1000, 100_000],
    };

const work = path.join(repoRoot, 'bench', '.work');
rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true });
ensureTools();
const info = machine();
console.log(
  `dsg bench (${opt.quick ? 'quick' : 'full'}, ${runs} runs after 1 warm-up) on ${info.cores} cores, ${info.memoryGiB} GiB, ${info.kernel}`,
);

const env = bringUp(repoRoot, work, sizes.pool);
const data = path.join(work, 'data');
const rows = [];
const notes = [];
try {
  const t0 = Date.now();
  // only the data sets the selected workloads use (`--only w2` needs no 2 GiB file)
  const selected = workloads.filter((w) => !only || only.has(w.id));
  const needed = new Set(selected.flatMap((w) => w.needs));
  const equal = ({ files, bytes }, seed) => ({ dir: 'batch', files, size: Math.floor(bytes / files), seed });
  const sets = {
    research: needed.has('research') ? await makeResearch(path.join(data, 'research'), sizes.research) : null,
    small: needed.has('small') ? await makeManySmall(path.join(data, 'small'), { files: sizes.small }) : null,
    large: needed.has('large') ? await makeOneLarge(path.join(data, 'large'), { size: sizes.large }) : null,
    rename: needed.has('rename') ? await makeEqualFiles(path.join(data, 'rename'), equal(sizes.rename, 4)) : null,
    resume: needed.has('resume') ? await makeEqualFiles(path.join(data, 'resume'), equal(sizes.resume, 5)) : null,
  };
  const made = Object.entries(sets)
    .filter(([, v]) => v)
    .map(([k, v]) => `${k} ${v.files} files / ${(v.bytes / 2 ** 20).toFixed(0)} MiB`);
  console.log(`data generated in ${((Date.now() - t0) / 1000).toFixed(1)}s: ${made.join(', ') || 'none needed'}`);
  const ctx = { repoRoot, work, data, env, runs, sizes, sets, rows, notes };
  for (const w of selected) {
    console.log(`\n== ${w.id}: ${w.title}`);
    try {
      await w.run(ctx);
    } catch (e) {
      const msg = String(e?.message ?? e)
        .split('\n')
        .slice(0, 3)
        .join(' | ');
      console.log(`   FAILED: ${msg}`);
      notes.push(`${w.id} did not complete: ${msg}`);
    }
  }
} finally {
  if (!opt.keep) {
    tearDown(repoRoot, env.envDir);
    // retried: a process the bench started (git) may still be finishing in there
    rmSync(work, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
  }
}

const analysisFile = path.join(repoRoot, 'bench', 'ANALYSIS.md');
const rssCell = (r) =>
  r.rssMiB ? `${r.rssMiB.toFixed(0)} MiB${r.agentRssMiB ? ` (agent ${r.agentRssMiB.toFixed(0)} MiB)` : ''}` : '—';
// w8 and w9 report the file content a sync put on the wire: the column is there only when a row has it
const sentColumn = rows.some((r) => r.sent);
const fmt = (s) => (s == null ? '—' : s < 1 ? `${(s * 1000).toFixed(0)} ms` : `${s.toFixed(2)} s`);
const lines = [
  `# dsg benchmark results`,
  ``,
  `${new Date().toISOString().slice(0, 10)} · ${opt.quick ? 'quick' : 'full'} sizes · ${runs} runs after one warm-up`,
  ``,
  `Machine: ${info.cores} cores (${info.cpu}), ${info.memoryGiB} GiB, ${info.kernel}, node ${info.node}; ${info.zfs}; ${info.rsync}; ${info.git}; ${info.restic}; ${info.xxhsum}`,
  ``,
  `| workload | tool | min | median | max | peak RSS |${sentColumn ? ' content sent |' : ''} ratio (dsg / other, median) | target |`,
  `|---|---|---|---|---|---|${sentColumn ? '---|' : ''}---|---|`,
  ...rows.map(
    (r) =>
      `| ${r.workload} | ${r.tool} | ${fmt(r.min)} | ${fmt(r.median)} | ${fmt(r.max)} | ${rssCell(r)} |${sentColumn ? ` ${r.sent ?? ''} |` : ''} ${r.ratio ?? ''} | ${r.target ?? ''} |`,
  ),
  ``,
  ...(notes.length ? ['## Notes', '', ...notes.map((n) => `- ${n}`), ''] : []),
  // what bounds the targets we miss: profiled by hand, kept next to the numbers it explains
  ...(existsSync(analysisFile) ? [readFileSync(analysisFile, 'utf8').trim(), ''] : []),
];
const md = lines.join('\n');
console.log('\n' + md);
mkdirSync(path.join(repoRoot, 'bench', 'results'), { recursive: true });
// a partial run (--only) must not pass for the whole table: it needs --out
const outFile = opt.out
  ? path.resolve(opt.out)
  : only
    ? null
    : path.join(repoRoot, 'bench', 'results', opt.quick ? 'latest-quick.md' : 'latest.md');
if (outFile) writeFileSync(outFile, md + '\n');
else console.log('\n(--only: results not written; pass --out <file> to keep them)');
if (!existsSync(path.join(repoRoot, 'bench', 'results'))) process.exit(1);
