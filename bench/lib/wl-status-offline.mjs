// Workload: a warm no-change `dsg status --offline` (no connection: the
// working tree against the last sync) on the `small` data set, against
// `git status` on the same committed tree. The issue's target: ≤ 2× git status.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { series, timed } from './measure.mjs';
import { dsg, dsgNoRecord, dsgSetup, gitStatusSeries, JS_WALK, settle } from './common.mjs';

const here = path.dirname(new URL(import.meta.url).pathname);

/**
 * The project synced once. w2 may have done it (to ZFS over ssh); otherwise
 * `dsg init` into a local posix repository (an offline status never connects,
 * so where the repository is does not matter).
 */
function ensureSynced(ctx, project) {
  if (existsSync(path.join(project, '.dsg', 'last-sync.json')) && existsSync(path.join(project, '.dsgconfig.yml')))
    return;
  dsgSetup(ctx);
  const repos = path.join(ctx.work, 'posix-repos-offline');
  mkdirSync(repos, { recursive: true });
  writeFileSync(
    path.join(project, '.dsgconfig.yml'),
    `name: small-offline\nrepository:\n  type: posix\n  root: ${repos}\ndata_dirs: [input, output]\n`,
  );
  dsg(ctx, project, ['init', '-m', 'bench', '--quiet']);
}

/** The library steps of an offline status (read C, scan with the stat cache, classify against C), one process. */
const LIBRARY_STATUS = `
import { STAT_CACHE } from '@dsg/contracts';
import { classify, readManifestFile, scanProject } from '@dsg/manifest';
import path from 'node:path';
const root = process.argv[1];
const c = await readManifestFile(path.join(root, '.dsg/last-sync.json'));
const r = await scanProject({ root, dataDirs: ['input', 'output'], user: 'bench@example.org',
  statCacheFile: path.join(root, STAT_CACHE), previous: c });
const plans = classify(r.manifest, c, c);
if (plans.some((p) => p.action !== 'none') || r.stats.hashed) throw new Error('the tree changed');
`;

const row = (s) => `median ${s.median.toFixed(3)}s (min ${s.min.toFixed(3)}, max ${s.max.toFixed(3)})`;

export default {
  id: 'w12',
  needs: ['small'],
  title: 'warm no-change `dsg status --offline` on `many-small` vs git status',
  async run(ctx) {
    const project = path.join(ctx.data, 'small');
    ensureSynced(ctx, project);
    settle(ctx, project, ['status', '--offline', '--quiet']);
    const push = (tool, s, extra = {}) => {
      ctx.rows.push({ workload: 'w12 offline status', tool, ...s, ...extra });
      console.log(`   ${tool.padEnd(36)} ${row(s)}${s.rssMiB ? `  peak RSS ${s.rssMiB.toFixed(0)} MiB` : ''}`);
    };
    const gs = gitStatusSeries(ctx, project);
    const ratio = (s) => `${(s.median / gs.median).toFixed(2)}× git`;
    let st = null;
    try {
      st = series({ runs: ctx.runs, measure: () => dsg(ctx, project, ['status', '--offline', '--quiet']) });
    } catch (e) {
      ctx.notes?.push?.(`w12: dsg status --offline failed: ${String(e.message).split('\n')[0]}`);
      console.log(`   dsg status --offline failed: ${String(e.message).split('\n')[0]}`);
    }
    if (st) {
      push('dsg status --offline', st, { ratio: ratio(st), target: '≤ 2.0× git status' });
      const proving = series({
        runs: ctx.runs,
        measure: () => dsgNoRecord(ctx, project, ['status', '--offline', '--quiet']),
      });
      push('dsg status --offline (no walk record)', proving, {
        ratio: `${ratio(proving)}; the first status after a sync proves the tree and records it`,
      });
      const js = series({
        runs: ctx.runs,
        measure: () => dsg(ctx, project, ['status', '--offline', '--quiet'], JS_WALK),
      });
      push('dsg status --offline (JS walk)', js, {
        ratio: `${ratio(js)}; native walk ${(js.median / st.median).toFixed(2)}× faster`,
      });
    }
    const lib = series({
      runs: ctx.runs,
      measure: () => timed('node', ['--input-type=module', '-e', LIBRARY_STATUS, project], { cwd: here }),
    });
    push('read C + scan + classify (library)', lib, { ratio: ratio(lib) });
    push('git status', gs);
  },
};
