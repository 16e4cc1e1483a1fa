// What every workload shares: how dsg, ssh, rsync and git are run, and how a
// result row is printed and kept. One copy here; the workload files import it.
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { run, series, timed } from './measure.mjs';

export const here = path.dirname(new URL(import.meta.url).pathname);

/** ssh options for the bench host (its own config and known_hosts under the bench HOME). */
export function sshOpts(ctx) {
  const h = ctx.env.home;
  return [
    '-F',
    path.join(h, '.ssh', 'config'),
    '-o',
    `UserKnownHostsFile=${path.join(h, '.ssh', 'known_hosts')}`,
    '-o',
    'StrictHostKeyChecking=yes',
  ];
}
export const rsyncSsh = (ctx) => ['-e', ['ssh', ...sshOpts(ctx)].join(' ')];

/** The environment dsg and ssh run in: the bench HOME (when the bench host is up) and its dsg user config. */
export const userEnv = (ctx) => ({
  ...process.env,
  ...(ctx.env?.home ? { HOME: ctx.env.home } : {}),
  DSG_CONFIG_HOME: path.join(ctx.work, 'dsgconf'),
  NO_COLOR: '1',
});

/** The bench user's dsg config (user_id and name). */
export function dsgSetup(ctx) {
  const conf = path.join(ctx.work, 'dsgconf');
  mkdirSync(conf, { recursive: true });
  writeFileSync(path.join(conf, 'dsg.yml'), 'user_name: Bench\nuser_id: bench@example.org\n');
}

/**
 * The agent command (a YAML flow sequence) dsg runs on the bench host from
 * now on. It is a personal setting: dsg never takes it from a project's
 * .dsgconfig.yml (a teammate could put any command there), so it goes into
 * the bench user's config, `hosts: dsgbench: agent:`.
 */
export function useAgent(ctx, agentFlow) {
  dsgSetup(ctx);
  const file = path.join(ctx.work, 'dsgconf', 'dsg.yml');
  writeFileSync(file, `${readFileSync(file, 'utf8')}hosts:\n  dsgbench:\n    agent: ${agentFlow}\n`);
}

/**
 * DSG_BENCH_CPU_PROF=DIR: every dsg and agent process writes a V8 CPU profile
 * under DIR/client and DIR/agent (to find where a workload's time goes; the
 * times of such a run are not results).
 */
export const profiling = process.env.DSG_BENCH_CPU_PROF ? path.resolve(process.env.DSG_BENCH_CPU_PROF) : '';

/**
 * The `dsg` binary as it ships (the bundle the CLI package's `bin` names), or
 * DSG_BENCH_DSG (another entry point: a profiling build, the unbundled one).
 */
export const dsgBin = (ctx) =>
  process.env.DSG_BENCH_DSG
    ? path.resolve(process.env.DSG_BENCH_DSG)
    : path.join(
        ctx.repoRoot,
        'apps/cli',
        JSON.parse(readFileSync(path.join(ctx.repoRoot, 'apps/cli/package.json'), 'utf8')).bin.dsg,
      );

/** One timed `dsg …` in `cwd`, as the bench user (`env`: more variables, e.g. DSG_DIRSTAT=js). */
export function dsg(ctx, cwd, args, env = {}) {
  const prof = profiling ? ['--cpu-prof', '--cpu-prof-dir', path.join(profiling, 'client')] : [];
  return timed('node', [...prof, dsgBin(ctx), ...args], { cwd, env: { ...userEnv(ctx), ...env } });
}

/** The same dsg with its directory walk in JavaScript (the fallback where the native lister cannot load). */
export const JS_WALK = { DSG_DIRSTAT: 'js' };

/**
 * Bring a just-synced project to its everyday state: one status (the first
 * read of a last sync writes its mirror, and may rewrite the stat cache), then
 * wait until `last-sync.json` and the stat cache last changed more than 2 s
 * ago. dsg records the walk that proves a tree unchanged (`.dsg/last-sync.walk`)
 * only for files older than that (git's racy-clean rule), so the warm-up run of
 * the series writes it and the measured runs are the status of any tree not
 * synced within the last seconds.
 */
export function settle(ctx, project, args) {
  dsg(ctx, project, args);
  const files = ['last-sync.json', 'stat-cache.json'].map((f) => path.join(project, '.dsg', f));
  const newest = Math.max(...files.filter(existsSync).map((f) => Math.max(statSync(f).mtimeMs, statSync(f).ctimeMs)));
  const wait = newest + 2100 - Date.now();
  if (wait > 0) run('sleep', [(wait / 1000).toFixed(2)]);
}

/** A `dsg …` run without the walk record: the status proves the tree unchanged again (the first one after a sync). */
export function dsgNoRecord(ctx, project, args, env = {}) {
  rmSync(path.join(project, '.dsg', 'last-sync.walk'), { force: true });
  return dsg(ctx, project, args, env);
}

/** Largest peak RSS (MiB) the agent sessions appended to `file` (GNU time -a -o); empties it. */
export function takeAgentRss(file) {
  if (!existsSync(file)) return null;
  const kib = readFileSync(file, 'utf8')
    .split('\n')
    .map(Number)
    .filter((n) => Number.isFinite(n) && n > 0);
  rmSync(file, { force: true });
  return kib.length ? Math.max(...kib) / 1024 : null;
}

/**
 * zfs destroy -r, retried while zfs-fuse says busy (it does for a moment after
 * the agent's last unmount); a repository left behind would fill the pool.
 */
export function destroyDataset(ds) {
  for (let i = 0; ; i++) {
    const r = run('zfs', ['destroy', '-r', ds], { allowFail: true });
    if (r.status === 0 || /does not exist/.test(r.stderr) || i >= 50) return;
    run('sleep', ['0.2']);
  }
}

/** `git status` on `project`, its tree committed first (once; .dsg/ ignored) as a git user would have it. */
export function gitStatusSeries(ctx, project) {
  if (!existsSync(path.join(project, '.git'))) {
    writeFileSync(path.join(project, '.gitignore'), '.dsg/\n');
    // no automatic gc/maintenance: git leaves it running in the background after the commit, and
    // the bench's teardown then found .git changing under its rm (ENOTEMPTY)
    const quiet = ['-c', 'gc.auto=0', '-c', 'maintenance.auto=false'];
    run('git', ['init', '-q'], { cwd: project });
    run('git', [...quiet, 'add', '-A'], { cwd: project });
    run('git', [...quiet, '-c', 'user.email=b@e', '-c', 'user.name=b', 'commit', '-qm', 'bench'], { cwd: project });
  }
  return series({ runs: ctx.runs, measure: () => timed('git', ['status', '--porcelain'], { cwd: project }) });
}

export const ratio = (a, b) => `${(a.median / b.median).toFixed(2)}×`;

/** Keep a result row and print it. */
export function push(ctx, workload, tool, s, extra = {}) {
  ctx.rows.push({ workload, tool, ...s, ...extra });
  const agent = s.agentRssMiB ? `, agent ${s.agentRssMiB.toFixed(0)} MiB` : '';
  console.log(
    `   ${tool.padEnd(28)} median ${s.median.toFixed(3)}s  (min ${s.min.toFixed(3)}, max ${s.max.toFixed(3)})${s.rssMiB ? `  peak RSS ${s.rssMiB.toFixed(0)} MiB${agent}` : ''}`,
  );
}

/** min/median/max/peak RSS of measurements made outside series(). */
export function summary(xs) {
  const s = xs.map((x) => x.secs).sort((p, q) => p - q);
  const peak = (k) => Math.max(0, ...xs.map((x) => (Number.isFinite(x[k]) ? x[k] : 0))) || null;
  return {
    min: s[0],
    median: s[Math.floor(s.length / 2)],
    max: s[s.length - 1],
    rssMiB: peak('rssMiB'),
    agentRssMiB: peak('agentRssMiB'),
  };
}
