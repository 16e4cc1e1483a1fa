// Workload: a no-change `dsg status` over SSH to ZFS on the `small` data set
// (warm: stat cache and page cache), against `rsync -an` over the same SSH
// and `git status` on the same tree, plus `dsg status --offline` (no
// connection at all). With nothing new in the repository, status asks the
// agent for the digest of the repository's `last-sync.json` (protocol 1.2)
// instead of downloading it: the agent's log gives the bytes it sent per
// status, which is that manifest's size for an agent or dsg without it.
// The project's own `.dsg`/`.dsgconfig.yml` (w2's, if it ran) are set aside
// and put back, so the workloads around this one find them as they left them.
import { existsSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { run, series, timed } from './measure.mjs';
import {
  destroyDataset,
  dsg,
  dsgNoRecord,
  dsgSetup,
  gitStatusSeries,
  here,
  JS_WALK,
  ratio,
  rsyncSsh,
  settle,
  useAgent,
  userEnv,
} from './common.mjs';

const NAME = 'small-status';

/** .dsgconfig.yml for a ZFS repository on the bench host over ssh; the agent (user config) runs through agent-log.sh (its log counts what it sent). */
function writeConfig(ctx, project, logFile) {
  const agent = path.join(ctx.repoRoot, 'apps/agent/dist/dsg-agent.mjs');
  writeFileSync(
    path.join(project, '.dsgconfig.yml'),
    `name: ${NAME}\nrepository:\n  type: zfs\n  host: dsgbench\n  pool: ${ctx.env.pool}/repos\n` +
      `  mountpoint: ${ctx.env.poolMount}/repos\n` +
      'data_dirs: [input, output]\n',
  );
  useAgent(ctx, `[sh, ${path.join(here, 'agent-log.sh')}, ${logFile}, node, ${agent}]`);
}

/** Bytes the agent sent per session since the log was last emptied (its `session moved:` lines; a session that sent nothing logs none). */
function sentPerSession(logFile) {
  if (!existsSync(logFile)) return null;
  const text = readFileSync(logFile, 'utf8');
  rmSync(logFile, { force: true });
  const sessions = (text.match(/^agent started$/gm) ?? []).length;
  let sent = 0;
  for (const m of text.matchAll(/session moved: .*? sent (\d+) bytes/g)) sent += Number(m[1]);
  return sessions ? sent / sessions : null;
}

const kib = (n) => `${(n / 1024).toFixed(1)} KiB`;

export default {
  id: 'w13',
  needs: ['small'],
  title:
    'no-change `dsg status` over ssh to ZFS on `many-small` (head by digest) vs rsync -an, git status; and --offline',
  async run(ctx) {
    const W = 'w13 no-change status (ssh)';
    const push = (tool, s, extra = {}) => {
      ctx.rows.push({ workload: W, tool, ...s, ...extra });
      console.log(
        `   ${tool.padEnd(36)} median ${s.median.toFixed(3)}s  (min ${s.min.toFixed(3)}, max ${s.max.toFixed(3)})${s.rssMiB ? `  peak RSS ${s.rssMiB.toFixed(0)} MiB` : ''}`,
      );
    };
    const project = path.join(ctx.data, 'small');
    dsgSetup(ctx);
    run('zfs', ['create', '-p', `${ctx.env.pool}/repos`], { allowFail: true });
    const logFile = path.join(ctx.work, 'w13-agent.log');
    // set aside what another workload left in the project (w2's .dsg and config): put back at the end
    const saved = { dsg: path.join(project, '.dsg.w13-saved'), config: null };
    if (existsSync(path.join(project, '.dsg'))) renameSync(path.join(project, '.dsg'), saved.dsg);
    if (existsSync(path.join(project, '.dsgconfig.yml')))
      saved.config = readFileSync(path.join(project, '.dsgconfig.yml'));
    try {
      destroyDataset(`${ctx.env.pool}/repos/${NAME}`);
      writeConfig(ctx, project, logFile);
      dsg(ctx, project, ['init', '-m', 'bench', '--quiet']);
      const manifestBytes = statSync(path.join(project, '.dsg', 'last-sync.json')).size;
      rmSync(logFile, { force: true });
      settle(ctx, project, ['status', '--quiet']);

      const st = series({ runs: ctx.runs, measure: () => dsg(ctx, project, ['status', '--quiet']) });
      const stProving = series({ runs: ctx.runs, measure: () => dsgNoRecord(ctx, project, ['status', '--quiet']) });
      const stJs = series({ runs: ctx.runs, measure: () => dsg(ctx, project, ['status', '--quiet'], JS_WALK) });
      run('sleep', ['3']); // the agent logs a session at its end, which may come after dsg has exited
      const sent = sentPerSession(logFile);
      let off = null;
      try {
        off = series({ runs: ctx.runs, measure: () => dsg(ctx, project, ['status', '--offline', '--quiet']) });
      } catch (e) {
        // a dsg without --offline (measuring an older build)
        console.log(`   dsg status --offline failed: ${String(e.message).split('\n')[0]}`);
      }
      const gs = gitStatusSeries(ctx, project);
      const dest = path.join(ctx.work, 'rsync-small-status');
      run('rsync', ['-a', ...rsyncSsh(ctx), `${project}/input/`, `dsgbench:${dest}/`], { env: userEnv(ctx) });
      const rn = series({
        runs: ctx.runs,
        measure: () =>
          timed('rsync', ['-an', ...rsyncSsh(ctx), `${project}/input/`, `dsgbench:${dest}/`], { env: userEnv(ctx) }),
      });
      rmSync(dest, { recursive: true, force: true });

      const note =
        sent === null ? '' : `; the agent sent ${kib(sent)} per status (the manifest is ${kib(manifestBytes)})`;
      push('dsg status (ZFS, ssh)', st, {
        ratio: `${ratio(st, gs)} git; ${ratio(st, rn)} rsync -an${note}`,
        target: '≤ 1.0× rsync -an (ssh)',
      });
      push('dsg status (ZFS, ssh; no walk record)', stProving, { ratio: `${ratio(stProving, rn)} rsync -an` });
      push('dsg status (ZFS, ssh; JS walk)', stJs, { ratio: `${ratio(stJs, rn)} rsync -an` });
      if (off) push('dsg status --offline', off, { ratio: `${ratio(off, gs)} git`, target: '≤ 2.0× git status' });
      push('git status', gs);
      push('rsync -an (ssh)', rn);
      if (sent !== null) console.log(`   agent sent per status: ${kib(sent)}; last-sync.json is ${kib(manifestBytes)}`);
    } finally {
      rmSync(path.join(project, '.dsg'), { recursive: true, force: true });
      if (existsSync(saved.dsg)) renameSync(saved.dsg, path.join(project, '.dsg'));
      if (saved.config) writeFileSync(path.join(project, '.dsgconfig.yml'), saved.config);
      else rmSync(path.join(project, '.dsgconfig.yml'), { force: true });
      destroyDataset(`${ctx.env.pool}/repos/${NAME}`);
    }
  },
};
