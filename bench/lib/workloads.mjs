// The workloads of issue 9 (and the scan case of issue 6). `needs`: the data
// sets a workload reads (run.mjs generates only those). Each pushes rows
// { workload, tool, min, median, max, rssMiB, ratio, target } into ctx.rows.
import {
  rmSync,
  mkdirSync,
  writeFileSync,
  existsSync,
  readFileSync,
  renameSync,
  readdirSync,
  lstatSync,
  createReadStream,
} from 'node:fs';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { run, series, timed } from './measure.mjs';
import { touchManySmall } from './data.mjs';
import {
  destroyDataset,
  dsg,
  dsgBin,
  dsgSetup,
  gitStatusSeries,
  here,
  profiling,
  push,
  ratio,
  rsyncSsh,
  sshOpts,
  summary,
  takeAgentRss,
  useAgent,
  userEnv,
} from './common.mjs';
import { manyEntries, millionEntries } from './wl-many-entries.mjs';
import statusOffline from './wl-status-offline.mjs';
import statusSsh from './wl-status-ssh.mjs';
import replication from './wl-replication.mjs';

const agentCmd = (ctx, rssFile, logFile) => {
  const agent = path.join(ctx.repoRoot, 'apps/agent/dist/dsg-agent.mjs');
  const node = profiling ? `node, --cpu-prof, --cpu-prof-dir, ${profiling}/agent` : 'node';
  const timedAgent = rssFile ? `/usr/bin/time, -f, '%M', -a, -o, ${rssFile}, ${node}, ${agent}` : `${node}, ${agent}`;
  return logFile ? `[sh, ${path.join(here, 'agent-log.sh')}, ${logFile}, ${timedAgent}]` : `[${timedAgent}]`;
};

/** Wraps a measure() so the agent's peak RSS joins the client's in the result. */
function withAgentRss(file, measure) {
  return (i) => {
    const m = measure(i);
    return { ...m, agentRssMiB: takeAgentRss(file) };
  };
}

/** .dsgconfig.yml for a project whose repository is on the bench host over SSH. */
function writeConfig(ctx, project, name, type, rssFile, logFile) {
  const repo =
    type === 'zfs'
      ? `  type: zfs\n  host: dsgbench\n  pool: ${ctx.env.pool}/repos\n  mountpoint: ${ctx.env.poolMount}/repos\n`
      : `  type: posix\n  host: dsgbench\n  root: ${path.join(ctx.work, 'posix-repos')}\n`;
  writeFileSync(
    path.join(project, '.dsgconfig.yml'),
    `name: ${name}\nrepository:\n${repo}data_dirs: [input, output]\n`,
  );
  useAgent(ctx, agentCmd(ctx, rssFile, logFile));
  rmSync(path.join(project, '.dsg'), { recursive: true, force: true });
}

function ensureReposParents(ctx) {
  run('zfs', ['create', '-p', `${ctx.env.pool}/repos`], { allowFail: true });
  mkdirSync(path.join(ctx.work, 'posix-repos'), { recursive: true });
}

/** `runs` first syncs (`dsg init`) of `project` into fresh repositories `<prefix><type><i>`. */
function firstSyncSeries(ctx, project, prefix, type, rssFile) {
  return series({
    runs: ctx.runs,
    setup: (i) => {
      const prev = `${prefix}${type}${i - 1}`;
      if (i > 0 && type === 'zfs') destroyDataset(`${ctx.env.pool}/repos/${prev}`);
      if (i > 0 && type === 'posix') rmSync(path.join(ctx.work, 'posix-repos', prev), { recursive: true, force: true });
      writeConfig(ctx, project, `${prefix}${type}${i}`, type, rssFile);
    },
    measure: withAgentRss(rssFile, () => dsg(ctx, project, ['init', '-m', 'bench', '--quiet'])),
  });
}

/** Removes the last repository a firstSyncSeries left (keeps the pool small for what follows). */
function dropLastRepo(ctx, prefix, type) {
  const last = `${prefix}${type}${ctx.runs}`;
  if (type === 'zfs') destroyDataset(`${ctx.env.pool}/repos/${last}`);
  else rmSync(path.join(ctx.work, 'posix-repos', last), { recursive: true, force: true });
}

/** `rsync -a` over ssh of `project` into a fresh `dest` on the bench host, `runs` times; removes dest after. */
function rsyncFirstSyncSeries(ctx, project, dest) {
  const rs = series({
    runs: ctx.runs,
    setup: () => rmSync(dest, { recursive: true, force: true }),
    measure: () =>
      timed(
        'rsync',
        ['-a', ...rsyncSsh(ctx), '--exclude=.dsg', '--exclude=.dsgconfig.yml', `${project}/`, `dsgbench:${dest}/`],
        { env: userEnv(ctx) },
      ),
  });
  rmSync(dest, { recursive: true, force: true });
  return rs;
}

const MiB = (n) => (n < 2 ** 20 ? `${n.toLocaleString('en')} bytes` : `${(n / 2 ** 20).toFixed(1)} MiB`);
const pct = (n, total) => `${((100 * n) / total).toFixed(0)} %`;

/**
 * What the agent sessions logged to `file` since the last call: sessions
 * started (agent-log.sh's line) and ended, and the content their `session
 * moved` lines count. Renamed away before reading, so a line appended
 * meanwhile goes to the next call.
 */
function takeAgentLog(file) {
  const out = { started: 0, ended: 0, received: 0, receivedFiles: 0, copied: 0, copiedFiles: 0, lines: [] };
  if (!existsSync(file)) return out;
  const taken = `${file}.taken`;
  renameSync(file, taken);
  const text = readFileSync(taken, 'utf8');
  rmSync(taken, { force: true });
  for (const line of text.split('\n')) {
    if (line === 'agent started') out.started++;
    if (/ session ended$/.test(line)) out.ended++;
    const m =
      /session moved: received (\d+) bytes \((\d+) files\).*copied (\d+) bytes on the server \((\d+) files\)/.exec(
        line,
      );
    if (m) {
      out.received += Number(m[1]);
      out.receivedFiles += Number(m[2]);
      out.copied += Number(m[3]);
      out.copiedFiles += Number(m[4]);
    }
    if (line) out.lines.push(line);
  }
  return out;
}

/** Waits (up to 120 s) until every agent session logged to `file` has ended: a killed client's agent still rolls back, parks and unlocks. */
async function agentSessionsEnded(file) {
  for (let i = 0; i < 1200; i++) {
    const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
    const started = text.split('\n').filter((l) => l === 'agent started').length;
    // a session ends with "session ended", or with "error: …" when serve() itself failed
    const ended = text.split('\n').filter((l) => /^dsg-agent\[\d+\] \S+ (session ended$|error: )/.test(l)).length;
    if (started > 0 && ended >= started) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

/**
 * Sum of the sizes of the regular files under `dir`, each inode once (a
 * posix repository parks a verified upload as a second link to it); files
 * renamed or removed meanwhile are skipped.
 */
function bytesUnder(dir, seen = new Set()) {
  let n = 0;
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) n += bytesUnder(p, seen);
    else if (e.isFile()) {
      try {
        const st = lstatSync(p);
        const id = `${st.dev}:${st.ino}`;
        if (!seen.has(id)) n += st.size;
        seen.add(id);
      } catch {
        /* renamed or removed while we looked */
      }
    }
  }
  return n;
}

/** relative path → sha256 of every entry under `root` (a non-file is listed as its kind). */
async function treeDigest(root) {
  const out = {};
  async function walk(dir, rel) {
    for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) await walk(path.join(dir, e.name), r);
      else if (!e.isFile()) out[r] = 'not a regular file';
      else {
        const h = createHash('sha256');
        for await (const chunk of createReadStream(path.join(dir, e.name))) h.update(chunk);
        out[r] = h.digest('hex');
      }
    }
  }
  await walk(root, '');
  return out;
}

/** Throws, naming the first paths that differ, unless the two digests list the same files with the same content. */
function assertSameTree(what, got, want) {
  const keys = [...new Set([...Object.keys(got), ...Object.keys(want)])].sort();
  const bad = keys.filter((k) => got[k] !== want[k]);
  if (bad.length)
    throw new Error(
      `${what}: ${bad.length} of ${keys.length} paths differ (${bad
        .slice(0, 5)
        .map((k) => `${k}: ${got[k] ? 'content' : 'missing'}${want[k] ? '' : ', extra'}`)
        .join('; ')})`,
    );
}

/** The live tree of repository `name`: the dataset's mount (ZFS) or what `current` points at (posix). */
function liveTree(ctx, type, name) {
  return type === 'zfs'
    ? path.join(ctx.env.poolMount, 'repos', name)
    : path.join(ctx.work, 'posix-repos', name, 'current');
}

/** Where a repository's uploads land while they arrive: the repositories' parent (only one repository exists then). */
function repoArea(ctx, type) {
  return type === 'zfs' ? path.join(ctx.env.poolMount, 'repos') : path.join(ctx.work, 'posix-repos');
}

function dropRepo(ctx, type, name) {
  if (type === 'zfs') {
    destroyDataset(`${ctx.env.pool}/repos/${name}`);
    // a ZFS repository parks an interrupted transfer's uploads beside its lock file, outside its dataset
    rmSync(path.join(ctx.env.poolMount, 'repos', `.${name}.dsg-parked`), { recursive: true, force: true });
  } else rmSync(path.join(ctx.work, 'posix-repos', name), { recursive: true, force: true });
}

/** `rsync --stats` figures: file content sent (Literal data) and everything on the wire (Total bytes sent). */
function rsyncStats(stdout) {
  const num = (re) => {
    const m = re.exec(stdout);
    return m ? Number(m[1].replace(/,/g, '')) : NaN;
  };
  return { literal: num(/^Literal data: ([\d,]+)/m), total: num(/^Total bytes sent: ([\d,]+)/m) };
}

/** `dsg … --json`: the result document, or null when the output is not one. */
function jsonDoc(stdout) {
  try {
    return JSON.parse(stdout);
  } catch {
    return null;
  }
}

/**
 * Starts `cmd`, and SIGKILLs it once `area` holds `half` more bytes than
 * when it started (polled every 100 ms: files being written count with what
 * they have so far). Rejects when the command ends before that.
 */
function killAtHalf(cmd, args, opts, area, half) {
  const base = bytesUnder(area);
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const child = spawn(cmd, args, { ...opts, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr = (stderr + d).slice(-2000)));
    let arrived = 0;
    let killed = false;
    const tick = setInterval(() => {
      arrived = bytesUnder(area) - base;
      if (arrived >= half && !killed) {
        killed = true;
        child.kill('SIGKILL');
      }
    }, 100);
    child.on('exit', (code) => {
      clearInterval(tick);
      if (killed) resolve({ arrived, secs: (Date.now() - t0) / 1000 });
      else reject(new Error(`${cmd} ended (exit ${code}) before half of the content arrived: ${stderr.slice(-500)}`));
    });
  });
}

export const workloads = [
  {
    id: 'w1',
    needs: ['research'],
    title: 'first sync of `research` over SSH (loopback): dsg→ZFS, dsg→posix vs rsync -a, restic backup (sftp)',
    async run(ctx) {
      dsgSetup(ctx);
      ensureReposParents(ctx);
      const project = path.join(ctx.data, 'research');
      const rssFile = path.join(ctx.work, 'agent-rss-w1');
      const results = {};
      for (const type of ['zfs', 'posix']) {
        results[type] = firstSyncSeries(ctx, project, 'r', type, rssFile);
      }
      const rs = rsyncFirstSyncSeries(ctx, project, path.join(ctx.work, 'rsync-dest'));
      const resticRepo = path.join(ctx.work, 'restic-repo');
      const resticEnv = { ...userEnv(ctx), RESTIC_PASSWORD: 'bench' };
      const sftp = ['-o', `sftp.command=ssh ${sshOpts(ctx).join(' ')} dsgbench -s sftp`];
      const re = series({
        runs: ctx.runs,
        setup: () => {
          rmSync(resticRepo, { recursive: true, force: true });
          run('restic', ['-r', `sftp:dsgbench:${resticRepo}`, ...sftp, 'init', '-q'], { env: resticEnv });
        },
        measure: () =>
          timed(
            'restic',
            [
              '-r',
              `sftp:dsgbench:${resticRepo}`,
              ...sftp,
              'backup',
              '-q',
              '--exclude',
              '.dsg',
              path.join(project, 'input'),
              path.join(project, 'output'),
            ],
            { env: resticEnv },
          ),
      });
      push(ctx, 'w1 first sync', 'dsg init → ZFS (ssh)', results.zfs, {
        ratio: `${ratio(results.zfs, rs)} rsync`,
        target: '≤ 1.0× rsync; RSS ≤ 200 MiB',
      });
      push(ctx, 'w1 first sync', 'dsg init → posix (ssh)', results.posix, {
        ratio: `${ratio(results.posix, rs)} rsync`,
        target: '≤ 1.0× rsync',
      });
      push(ctx, 'w1 first sync', 'rsync -a (ssh)', rs);
      push(ctx, 'w1 first sync', 'restic backup (sftp)', re, { ratio: `dsg→ZFS ${ratio(results.zfs, re)} restic` });
      for (const type of ['zfs', 'posix']) dropLastRepo(ctx, 'r', type);
      rmSync(resticRepo, { recursive: true, force: true });
    },
  },
  {
    id: 'w2',
    needs: ['small'],
    title: 'no-change status on `many-small` (warm cache) vs git status, rsync -an',
    async run(ctx) {
      dsgSetup(ctx);
      ensureReposParents(ctx);
      const project = path.join(ctx.data, 'small');
      writeConfig(ctx, project, 'small', 'zfs');
      dsg(ctx, project, ['init', '-m', 'bench', '--quiet']);
      const st = series({ runs: ctx.runs, measure: () => dsg(ctx, project, ['status', '--quiet']) });
      const gs = gitStatusSeries(ctx, project);
      const dest = path.join(ctx.work, 'rsync-small');
      run('rsync', ['-a', ...rsyncSsh(ctx), `${project}/input/`, `dsgbench:${dest}/`], { env: userEnv(ctx) });
      const rn = series({
        runs: ctx.runs,
        measure: () =>
          timed('rsync', ['-an', ...rsyncSsh(ctx), `${project}/input/`, `dsgbench:${dest}/`], { env: userEnv(ctx) }),
      });
      push(ctx, 'w2 no-change status', 'dsg status (ZFS, ssh)', st, {
        ratio: `${ratio(st, gs)} git; ${ratio(st, rn)} rsync -an`,
        target: '≤ 1.0× git status',
      });
      push(ctx, 'w2 no-change status', 'git status', gs);
      push(ctx, 'w2 no-change status', 'rsync -an (ssh)', rn);
    },
  },
  {
    id: 'w3',
    needs: ['small'],
    title: 'incremental sync: 10 files changed in `many-small` vs rsync',
    async run(ctx) {
      const project = path.join(ctx.data, 'small');
      if (!existsSync(path.join(project, '.dsg', 'last-sync.json')))
        throw new Error('needs w2 (initialised many-small project)');
      const dest = path.join(ctx.work, 'rsync-small');
      const d = [],
        r = [];
      for (let i = 0; i < ctx.runs + 1; i++) {
        await touchManySmall(project, { count: 10, round: i, files: ctx.sets.small.files });
        const a = dsg(ctx, project, ['sync', '-m', `round ${i}`, '--quiet']);
        const b = timed('rsync', ['-a', ...rsyncSsh(ctx), `${project}/input/`, `dsgbench:${dest}/`], {
          env: userEnv(ctx),
        });
        if (i > 0) {
          d.push(a);
          r.push(b);
        }
      }
      const ds = summary(d),
        rs = summary(r);
      push(ctx, 'w3 incremental (10 files)', 'dsg sync (ZFS, ssh)', ds, {
        ratio: `${ratio(ds, rs)} rsync`,
        target: '≤ 0.5× rsync',
      });
      push(ctx, 'w3 incremental (10 files)', 'rsync -a (ssh)', rs);
    },
  },
  {
    id: 'w4',
    needs: [],
    title: 'ZFS transaction overhead: begin+commit with zero files, repo of N files',
    async run(ctx) {
      for (const n of ctx.sizes.zfsRepo) {
        const r = timed(
          'node',
          [path.join(here, 'zfs-tx.mjs'), `${ctx.env.pool}/tx${n}`, String(n), String(ctx.runs)],
          { env: process.env },
        );
        const s = JSON.parse(r.stdout.trim().split('\n').pop());
        push(ctx, 'w4 ZFS tx overhead', `begin+commit, repo of ${n} files`, s, { target: 'flat in repo size' });
      }
    },
  },
  {
    id: 'w5',
    needs: ['large'],
    title: 'hash throughput on `one-large` vs xxhsum, sha256sum',
    async run(ctx) {
      const file = path.join(ctx.data, 'large', 'input', 'large.bin');
      const mb = ctx.sets.large.bytes / 2 ** 20;
      const h = series({ runs: ctx.runs, measure: () => timed('node', [path.join(here, 'hash-one.mjs'), file]) });
      const x = series({ runs: ctx.runs, measure: () => timed('xxhsum', ['-H3', file]) });
      const s = series({ runs: ctx.runs, measure: () => timed('sha256sum', [file]) });
      push(ctx, 'w5 hash one-large', `dsg xxh3 (${(mb / h.median).toFixed(0)} MiB/s)`, h, {
        ratio: `${ratio(h, x)} xxhsum; ${ratio(h, s)} sha256sum`,
        target: 'RSS ≤ 200 MiB',
      });
      push(ctx, 'w5 hash one-large', `xxhsum -H3 (${(mb / x.median).toFixed(0)} MiB/s)`, x);
      push(ctx, 'w5 hash one-large', `sha256sum (${(mb / s.median).toFixed(0)} MiB/s)`, s);
    },
  },
  {
    id: 'w6',
    needs: ['small'],
    title: 'scan+hash `many-small` cold (no stat cache) and warm (stat cache) vs git status',
    async run(ctx) {
      const project = path.join(ctx.data, 'small');
      const cache = path.join(ctx.work, 'scan-cache.json');
      const cold = series({
        runs: ctx.runs,
        measure: () => timed('node', [path.join(here, 'scan-one.mjs'), project, 'none']),
      });
      timed('node', [path.join(here, 'scan-one.mjs'), project, cache]);
      const warm = series({
        runs: ctx.runs,
        measure: () => timed('node', [path.join(here, 'scan-one.mjs'), project, cache]),
      });
      const gs = gitStatusSeries(ctx, project);
      push(ctx, 'w6 scan many-small', 'dsg scan cold (hash all)', cold, { ratio: `${ratio(cold, gs)} git` });
      push(ctx, 'w6 scan many-small', 'dsg scan warm (stat cache)', warm, {
        ratio: `${ratio(warm, gs)} git`,
        target: '≤ 1.0× git status',
      });
      push(ctx, 'w6 scan many-small', 'git status', gs);
    },
  },
  {
    id: 'w7',
    needs: ['large'],
    title:
      'first sync of `one-large` over SSH to ZFS and posix vs rsync -a: peak RSS of client and agent during the transfer',
    async run(ctx) {
      dsgSetup(ctx);
      ensureReposParents(ctx);
      const project = path.join(ctx.data, 'large');
      const rssFile = path.join(ctx.work, 'agent-rss-w7');
      const d = {};
      for (const type of ['zfs', 'posix']) {
        d[type] = firstSyncSeries(ctx, project, 'l', type, rssFile);
        dropLastRepo(ctx, 'l', type);
      }
      const rs = rsyncFirstSyncSeries(ctx, project, path.join(ctx.work, 'rsync-large'));
      const mb = ctx.sets.large.bytes / 2 ** 20;
      const rate = (x) => `${(mb / x.median).toFixed(0)} MiB/s`;
      push(ctx, 'w7 first sync one-large', `dsg init → ZFS (ssh) (${rate(d.zfs)})`, d.zfs, {
        ratio: `${ratio(d.zfs, rs)} rsync`,
        target: 'RSS ≤ 200 MiB (client and agent)',
      });
      push(ctx, 'w7 first sync one-large', `dsg init → posix (ssh) (${rate(d.posix)})`, d.posix, {
        ratio: `${ratio(d.posix, rs)} rsync`,
        target: 'RSS ≤ 200 MiB (client and agent)',
      });
      push(ctx, 'w7 first sync one-large', `rsync -a (ssh) (${rate(rs)})`, rs);
    },
  },
  {
    id: 'w8',
    needs: ['rename'],
    title: 'sync after `mv` of a synced directory (~100 files) over SSH to ZFS and posix vs rsync -a --delete',
    async run(ctx) {
      dsgSetup(ctx);
      ensureReposParents(ctx);
      const project = path.join(ctx.data, 'rename');
      const { dir, bytes, files } = ctx.sets.rename;
      const rssFile = path.join(ctx.work, 'agent-rss-w8');
      const logFile = path.join(ctx.work, 'agent-log-w8');
      // each run renames the directory to the other name: every measured sync follows one `mv`
      const names = [dir, `${dir}-renamed`];
      let at = 0;
      const mv = () => {
        renameSync(path.join(project, 'input', names[at]), path.join(project, 'input', names[1 - at]));
        at = 1 - at;
      };
      const label = `w8 rename (${MiB(bytes)}, ${files} files)`;
      const d = {};
      for (const type of ['zfs', 'posix']) {
        const name = `mv${type}`;
        writeConfig(ctx, project, name, type, rssFile, logFile);
        dsg(ctx, project, ['init', '-m', 'bench', '--quiet']);
        takeAgentLog(logFile);
        takeAgentRss(rssFile);
        const moved = [];
        const s = series({
          runs: ctx.runs,
          setup: mv,
          measure: withAgentRss(rssFile, (i) => {
            const m = dsg(ctx, project, ['sync', '-m', `rename ${i}`, '--json']);
            const log = takeAgentLog(logFile);
            const doc = jsonDoc(m.stdout);
            moved.push({ ...log, wire: doc?.counts?.bytes, reused: doc?.counts?.bytesReused });
            return m;
          }),
        });
        // the warm-up is a rename too: every run counts
        const worst = moved.reduce((a, b) => (b.received > a.received ? b : a));
        d[type] = { s, worst };
        dropRepo(ctx, type, name);
      }
      const dest = path.join(ctx.work, 'rsync-rename');
      const rsyncArgs = ['-a', '--delete', '--stats', ...rsyncSsh(ctx), `${project}/input/`, `dsgbench:${dest}/`];
      run('rsync', rsyncArgs, { env: userEnv(ctx) });
      const rstats = [];
      const rs = series({
        runs: ctx.runs,
        setup: mv,
        measure: () => {
          const m = timed('rsync', rsyncArgs, { env: userEnv(ctx) });
          rstats.push(rsyncStats(m.stdout));
          return m;
        },
      });
      rmSync(dest, { recursive: true, force: true });
      const rmin = rstats.reduce((a, b) => (b.literal < a.literal ? b : a));
      for (const type of ['zfs', 'posix']) {
        const { s, worst } = d[type];
        push(ctx, label, `dsg sync → ${type === 'zfs' ? 'ZFS' : 'posix'} (ssh)`, s, {
          // what the agent received after a rename is the snapshot's metadata (manifest, messages), no file content
          sent: `${MiB(worst.received)} received by the agent in ${worst.receivedFiles} files (most of ${ctx.runs + 1} runs); ${worst.copiedFiles} files, ${MiB(worst.copied)} copied on the server${worst.reused != null ? `; --json bytes ${worst.wire}, bytesReused ${worst.reused}` : ''}`,
          ratio: `${ratio(s, rs)} rsync`,
          target: '< 1 MB of file content sent',
        });
        console.log(
          `     agent received ${worst.received} bytes (${worst.receivedFiles} files), copied ${worst.copied} bytes (${worst.copiedFiles} files)`,
        );
      }
      push(ctx, label, 'rsync -a --delete (ssh)', rs, {
        sent: `${MiB(rmin.literal)} file content (Literal data, least of ${ctx.runs + 1} runs), ${MiB(rmin.total)} total bytes sent`,
      });
    },
  },
  {
    id: 'w9',
    needs: ['resume'],
    title:
      'first sync into a fresh repository, SIGKILLed at half the content, then synced again: what the retry sends, ZFS and posix vs rsync -a',
    async run(ctx) {
      dsgSetup(ctx);
      ensureReposParents(ctx);
      const project = path.join(ctx.data, 'resume');
      const { dir, bytes: total, files } = ctx.sets.resume;
      const size = total / files;
      const batch = path.join(project, 'input', dir);
      const held = path.join(ctx.data, 'resume-held');
      const rssFile = path.join(ctx.work, 'agent-rss-w9');
      const logFile = path.join(ctx.work, 'agent-log-w9');
      const source = await treeDigest(path.join(project, 'input'));
      const label = `w9 resume (${MiB(total)}, ${files} files)`;
      // a fresh repository holding only the readme (dsg init with the batch moved out of the project):
      // what follows is the batch's first sync, which `dsg sync` can run again after a kill
      const freshRepo = (type, name) => {
        dropRepo(ctx, type, name);
        writeConfig(ctx, project, name, type, rssFile, logFile);
        renameSync(batch, held);
        try {
          dsg(ctx, project, ['init', '-m', 'readme', '--quiet']);
        } finally {
          renameSync(held, batch);
        }
        takeAgentLog(logFile);
        takeAgentRss(rssFile);
      };
      const main = dsgBin(ctx);
      for (const type of ['zfs', 'posix']) {
        const T = type === 'zfs' ? 'ZFS' : 'posix';
        // uninterrupted: the time to compare with, and the snapshot the resumed one must equal
        const full = [];
        const u = series({
          runs: ctx.runs,
          setup: (i) => {
            if (i > 0) dropRepo(ctx, type, `u${type}${i - 1}`);
            freshRepo(type, `u${type}${i}`);
          },
          measure: withAgentRss(rssFile, () => {
            const m = dsg(ctx, project, ['sync', '-m', 'whole', '--json']);
            full.push(takeAgentLog(logFile).received);
            return m;
          }),
        });
        const reference = await treeDigest(path.join(liveTree(ctx, type, `u${type}${ctx.runs}`), 'input'));
        assertSameTree(`w9 ${T}: the uninterrupted snapshot against the source`, reference, source);
        dropRepo(ctx, type, `u${type}${ctx.runs}`);

        const retries = [];
        for (let i = 0; i < ctx.runs; i++) {
          const name = `k${type}${i}`;
          freshRepo(type, name);
          const kill = await killAtHalf(
            'node',
            [main, 'sync', '-m', 'interrupted', '--quiet'],
            { cwd: project, env: userEnv(ctx) },
            repoArea(ctx, type),
            total / 2,
          );
          const ended = await agentSessionsEnded(logFile);
          if (!ended) ctx.notes.push(`w9 ${T}: the killed sync's agent session had not ended after 120 s`);
          const killed = takeAgentLog(logFile);
          takeAgentRss(rssFile);
          // the uploads the killed session verified (equal-sized files): what a resume can keep; the rest of
          // what it received was in files still in flight, which a retry sends again whole
          const whole = killed.receivedFiles * size;
          const m = dsg(ctx, project, ['sync', '-m', 'resumed', '--json']);
          const log = takeAgentLog(logFile);
          const agentRssMiB = takeAgentRss(rssFile);
          const doc = jsonDoc(m.stdout);
          const got = await treeDigest(path.join(liveTree(ctx, type, name), 'input'));
          assertSameTree(`w9 ${T}: the resumed snapshot against the source`, got, source);
          assertSameTree(`w9 ${T}: the resumed snapshot against the uninterrupted one`, got, reference);
          retries.push({ ...m, agentRssMiB, kill, killed, whole, log, doc });
          console.log(
            `     run ${i}: killed after ${kill.secs.toFixed(1)} s with ${pct(kill.arrived, total)} in the repository; the killed session received ${pct(killed.received, total)}, ${killed.receivedFiles} files whole (${pct(whole, total)}), ${MiB(killed.received - whole)} in files in flight; retry: agent received ${pct(log.received, total)} (${log.receivedFiles} files), copied ${log.copiedFiles} files; --json bytes ${doc?.counts?.bytes} bytesReused ${doc?.counts?.bytesReused}`,
          );
          dropRepo(ctx, type, name);
        }
        const r = summary(retries);
        const worst = retries.reduce((a, b) => (b.log.received > a.log.received ? b : a));
        const fullMax = Math.max(...full);
        push(ctx, label, `dsg sync → ${T} (ssh), uninterrupted`, u, {
          sent: `${MiB(fullMax)} received by the agent (${pct(fullMax, total)})`,
        });
        push(ctx, label, `dsg sync → ${T} (ssh), retry after SIGKILL at ~50 %`, r, {
          sent: `retry ${MiB(worst.log.received)} = ${pct(worst.log.received, total)} (most of ${ctx.runs} runs); its killed run: ${pct(worst.kill.arrived, total)} in the repository at the kill, ${pct(worst.killed.received, total)} received by the agent, ${worst.killed.receivedFiles} files whole (${pct(worst.whole, total)}), ${MiB(worst.killed.received - worst.whole)} in files in flight`,
          ratio: `${ratio(r, u)} uninterrupted`,
          target: '≤ 55 % of the content sent again; snapshot equal (checked)',
        });
      }

      // rsync: the same kill (measured at the destination), then the same command again
      const dest = path.join(ctx.work, 'rsync-resume');
      const rsyncArgs = ['-a', '--stats', ...rsyncSsh(ctx), `${project}/input/`, `dsgbench:${dest}/`];
      const ru = rsyncFirstSyncSeries(ctx, path.join(project, 'input'), dest);
      const rr = [];
      for (let i = 0; i < ctx.runs; i++) {
        rmSync(dest, { recursive: true, force: true });
        mkdirSync(dest, { recursive: true });
        const kill = await killAtHalf('rsync', rsyncArgs, { env: userEnv(ctx) }, dest, total / 2);
        // the remote rsync removes its partial file when the connection drops: wait for it to go
        for (let k = 0; k < 100 && readdirSync(path.join(dest, dir)).some((f) => f.startsWith('.')); k++)
          await new Promise((res) => setTimeout(res, 100));
        const m = timed('rsync', rsyncArgs, { env: userEnv(ctx) });
        rr.push({ ...m, kill, stats: rsyncStats(m.stdout) });
        assertSameTree('w9 rsync: the resumed copy against the source', await treeDigest(dest), source);
      }
      rmSync(dest, { recursive: true, force: true });
      const r = summary(rr);
      const worst = rr.reduce((a, b) => (b.stats.literal > a.stats.literal ? b : a));
      push(ctx, label, 'rsync -a (ssh), uninterrupted', ru);
      push(ctx, label, 'rsync -a (ssh), again after SIGKILL at ~50 %', r, {
        sent: `retry ${MiB(worst.stats.literal)} = ${pct(worst.stats.literal, total)} file content (most of ${ctx.runs} runs; ${pct(worst.kill.arrived, total)} at the destination at the kill)`,
      });
    },
  },
  {
    id: 'w10',
    needs: [],
    title:
      'start-up: `dsg --version`, `dsg --help`, `dsg status` outside a project vs `node -e 0`; the unbundled tsc output beside',
    async run(ctx) {
      dsgSetup(ctx);
      const outside = path.join(ctx.work, 'not-a-project');
      mkdirSync(outside, { recursive: true });
      const bundle = dsgBin(ctx);
      const tsc = path.join(ctx.repoRoot, 'apps/cli/dist/main.js');
      const cases = [
        ['node -e 0', ['-e', '0']],
        ['dsg --version (bundle)', [bundle, '--version']],
        ['dsg --version (tsc output)', [tsc, '--version']],
        ['dsg --help (bundle)', [bundle, '--help']],
        ['dsg status outside a project (bundle)', [bundle, 'status']],
        ['dsg status outside a project (tsc output)', [tsc, 'status']],
      ];
      // interleaved, many runs: a start-up is tens of milliseconds, so a busy
      // moment would otherwise land on one case only
      const times = cases.map(() => []);
      const n = Math.max(15, ctx.runs * 3);
      for (let i = 0; i < n + 1; i++)
        cases.forEach(([, args], k) => {
          const m = timed('node', args, { cwd: outside, env: userEnv(ctx), allowFail: true });
          if (i > 0) times[k].push(m);
        });
      const s = times.map(summary);
      const targets = { 1: '≤ 1.3× node -e 0', 4: '≤ 1.5× node -e 0' };
      cases.forEach(([tool], k) =>
        push(ctx, 'w10 start-up', tool, s[k], {
          ...(k > 0 ? { ratio: `${ratio(s[k], s[0])} node -e 0` } : {}),
          ...(targets[k] ? { target: targets[k] } : {}),
        }),
      );
    },
  },
  manyEntries,
  statusOffline,
  statusSsh,
  replication,
  millionEntries,
];
