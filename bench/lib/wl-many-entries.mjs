// Workload: memory with many entries. (a) Peak RSS of `dsg init`, a
// no-change `dsg sync`, a `dsg sync` with 10 changed files and a `dsg status`
// on 100,000 tiny files (quick: 10,000), to a posix repository over SSH (the
// agent's own peak beside the client's) and on this machine (the agent runs
// inside the client); target ≤ 300 MiB. (b) A repository of 1,000,000
// entries (quick: 100,000): init, status, a no-change sync and an offline
// status, each within 2 GiB. The data is generated here (not by run.mjs):
// tiny files of unique content, 1,000 to a directory.
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, statSync, statfsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { timed } from './measure.mjs';
import { dsgBin, dsgSetup, takeAgentRss, useAgent, userEnv } from './common.mjs';

/** `files` files of a few bytes each (unique content: the file's number) in `dirs` directories under input/. */
export function makeTinyFiles(project, { files, dirs }) {
  const per = Math.ceil(files / dirs);
  for (let d = 0; d < dirs; d++) {
    const dir = path.join(project, 'input', `d${String(d).padStart(4, '0')}`);
    mkdirSync(dir, { recursive: true });
    for (let i = d * per; i < Math.min(files, (d + 1) * per); i++) writeFileSync(path.join(dir, `f${i}.txt`), `${i}\n`);
  }
}

/** Rewrite `count` of those files with new content (`round` picks which and what). */
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

/**
 * .dsgconfig.yml of a project on a posix repository: over SSH to the bench
 * host, its agent under GNU time (which appends its peak RSS in KiB to
 * `rssFile` when the session ends), or on this machine (no host: the agent
 * runs inside the client).
 */
function writeConfig(ctx, project, name, where, rssFile) {
  const root = path.join(ctx.work, 'many-entries-repos');
  mkdirSync(root, { recursive: true });
  const agent = path.join(ctx.repoRoot, 'apps/agent/dist/dsg-agent.mjs');
  const repo =
    where === 'ssh' ? `  type: posix\n  host: dsgbench\n  root: ${root}\n` : `  type: posix\n  root: ${root}\n`;
  if (where === 'ssh') useAgent(ctx, `[/usr/bin/time, -f, '%M', -a, -o, ${rssFile}, node, ${agent}]`);
  writeFileSync(path.join(project, '.dsgconfig.yml'), `name: ${name}\nrepository:\n${repo}data_dirs: [input]\n`);
  rmSync(path.join(project, '.dsg'), { recursive: true, force: true });
  rmSync(path.join(root, name), { recursive: true, force: true });
}

/** Free inodes and bytes where `dir` lives. */
function room(dir) {
  const s = statfsSync(dir);
  return { inodes: s.ffree, bytes: s.bavail * s.bsize };
}

const fmtCount = (n) => n.toLocaleString('en');

/** The conf dir, the shipped `dsg` and a row printer, shared by both parts. */
function tools(ctx) {
  dsgSetup(ctx);
  const bin = dsgBin(ctx);
  const dsg = (project, args) => timed('node', [bin, ...args], { cwd: project, env: userEnv(ctx) });
  const row = (workload, tool, m, extra = {}) => {
    const s = { min: m.secs, median: m.secs, max: m.secs, rssMiB: m.rssMiB, agentRssMiB: m.agentRssMiB ?? null };
    ctx.rows.push({ workload, tool, ...s, runs: 1, ...extra });
    const agent = s.agentRssMiB ? `, agent ${s.agentRssMiB.toFixed(0)} MiB` : '';
    console.log(
      `   ${tool.padEnd(40)} ${m.secs.toFixed(2).padStart(8)} s  peak RSS ${m.rssMiB.toFixed(0)} MiB${agent}`,
    );
  };
  return { dsg, row, quick: (ctx.sizes?.small ?? 100_000) < 100_000 };
}

/** (a) 100k entries (quick: 10k), over SSH when the bench host is up, and on this machine. */
export async function measureManyEntries(ctx) {
  const { dsg, row, quick } = tools(ctx);
  const n = quick ? 10_000 : 100_000;
  const dirs = n / 1000;
  const project = path.join(ctx.work, 'many-entries');
  rmSync(project, { recursive: true, force: true });
  const t0 = Date.now();
  makeTinyFiles(project, { files: n, dirs });
  console.log(`   ${fmtCount(n)} tiny files generated in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  const label = `w11 ${quick ? '10k' : '100k'} entries`;
  const rssFile = path.join(ctx.work, 'agent-rss-w11');
  const wheres = ctx.env?.home ? ['ssh', 'local'] : ['local'];
  try {
    for (const [k, where] of wheres.entries()) {
      writeConfig(ctx, project, `many${where}`, where, rssFile);
      rmSync(rssFile, { force: true });
      const measured = (args) => ({ ...dsg(project, args), agentRssMiB: takeAgentRss(rssFile) });
      const target = { target: '≤ 300 MiB' };
      row(label, `dsg init (posix, ${where})`, measured(['init', '-m', 'bench', '--quiet']), target);
      row(label, `dsg sync, no change (${where})`, measured(['sync', '-m', 'none', '--quiet']), target);
      changeTinyFiles(project, { files: n, dirs, count: 10, round: k + 1 });
      row(label, `dsg sync, 10 changed (${where})`, measured(['sync', '-m', 'ten', '--quiet']), target);
      row(label, `dsg status, no change (${where})`, measured(['status', '--quiet']), target);
    }
  } finally {
    execFileSync('rm', ['-rf', project, path.join(ctx.work, 'many-entries-repos')]);
  }
}

/**
 * (b) 1M entries (quick: 100k) on this machine: init, status, a no-change
 * sync, an offline status. Each file takes an inode in the project and one
 * in the repository's snapshot (a sync adds hard links, no inodes): fewer
 * files, and a note, when the disk has no room for them.
 */
export async function measureMillion(ctx) {
  const { dsg, row, quick } = tools(ctx);
  const want = quick ? 100_000 : 1_000_000;
  const free = room(ctx.work);
  const fits = Math.min(want, Math.floor((free.inodes * 0.8) / 2.1), Math.floor((free.bytes * 0.8) / (2.1 * 4096)));
  const big = Math.max(1000, Math.floor(fits / 1000) * 1000);
  if (big < want) {
    const why = `w11: the disk has room for ${fmtCount(big)} tiny files in project + repository (${fmtCount(free.inodes)} inodes, ${(free.bytes / 2 ** 30).toFixed(0)} GiB free), not ${fmtCount(want)}: measured at ${fmtCount(big)}`;
    console.log(`   ${why}`);
    ctx.notes.push(why);
  }
  const project = path.join(ctx.work, 'million-entries');
  rmSync(project, { recursive: true, force: true });
  const t0 = Date.now();
  makeTinyFiles(project, { files: big, dirs: big / 1000 });
  console.log(`   ${fmtCount(big)} tiny files generated in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  writeConfig(ctx, project, 'million', 'local', null);
  const label = `w11 ${fmtCount(big)} entries`;
  const gib = { target: '≤ 2048 MiB' };
  try {
    row(label, 'dsg init (posix, local)', dsg(project, ['init', '-m', 'bench', '--quiet']), gib);
    row(label, 'dsg status, no change (local)', dsg(project, ['status', '--quiet']), gib);
    row(label, 'dsg sync, no change (local)', dsg(project, ['sync', '-m', 'none', '--quiet']), gib);
    row(label, 'dsg status --offline (local)', dsg(project, ['status', '--offline', '--quiet']), gib);
    const manifest = path.join(project, '.dsg', 'last-sync.json');
    console.log(`   its manifest: ${(statSync(manifest).size / 2 ** 20).toFixed(0)} MiB`);
  } finally {
    // rm -rf: a million files go faster than with rmSync's walk
    execFileSync('rm', ['-rf', project, path.join(ctx.work, 'many-entries-repos')]);
  }
}

/** Two workloads: the 1M part alone takes half an hour, so it runs on its own (`--only w14`). */
export const manyEntries = {
  id: 'w11',
  needs: [],
  title:
    'memory with many entries: peak RSS of init / no-change sync / 10-changed sync / status on 100k tiny files (posix: ssh, local)',
  run: measureManyEntries,
};

export const millionEntries = {
  id: 'w14',
  needs: [],
  title: '1M entries within 2 GiB: init, status, no-change sync, offline status (local posix)',
  run: measureMillion,
};
