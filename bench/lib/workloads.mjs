// The workloads of issue 9 (and the scan case of issue 6). `needs`: the data
// sets a workload reads (run.mjs generates only those). Each pushes rows
// { workload, tool, min, median, max, rssMiB, ratio, target } into ctx.rows.
import { rmSync, mkdirSync, writeFileSync, existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { run, series, timed } from './measure.mjs';
import { touchManySmall } from './data.mjs';

const here = path.dirname(new URL(import.meta.url).pathname);

function sshOpts(ctx) {
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
const rsyncSsh = (ctx) => ['-e', ['ssh', ...sshOpts(ctx)].join(' ')];
const userEnv = (ctx) => ({
  ...process.env,
  HOME: ctx.env.home,
  DSG_CONFIG_HOME: path.join(ctx.work, 'dsgconf'),
  NO_COLOR: '1',
});

function dsgSetup(ctx) {
  const conf = path.join(ctx.work, 'dsgconf');
  mkdirSync(conf, { recursive: true });
  writeFileSync(path.join(conf, 'dsg.yml'), 'user_name: Bench\nuser_id: bench@example.org\n');
}

/**
 * The agent command. With `rssFile`, the agent runs under GNU time, which
 * appends its peak RSS (KiB) to that file when the session ends: the server
 * side of a transfer is a separate process that the client's own
 * measurement never sees.
 */
const agentCmd = (ctx, rssFile) => {
  const agent = path.join(ctx.repoRoot, 'apps/agent/dist/dsg-agent.mjs');
  return rssFile ? `[/usr/bin/time, -f, '%M', -a, -o, ${rssFile}, node, ${agent}]` : `[node, ${agent}]`;
};

/** Largest peak RSS (MiB) the agent sessions appended to `file`; empties it. */
function takeAgentRss(file) {
  if (!existsSync(file)) return null;
  const kib = readFileSync(file, 'utf8')
    .split('\n')
    .map(Number)
    .filter((n) => Number.isFinite(n) && n > 0);
  rmSync(file, { force: true });
  return kib.length ? Math.max(...kib) / 1024 : null;
}

/** Wraps a measure() so the agent's peak RSS joins the client's in the result. */
function withAgentRss(file, measure) {
  return (i) => {
    const m = measure(i);
    return { ...m, agentRssMiB: takeAgentRss(file) };
  };
}

/** .dsgconfig.yml for a project whose repository is on the bench host over SSH. */
function writeConfig(ctx, project, name, type, rssFile) {
  const repo =
    type === 'zfs'
      ? `  type: zfs\n  host: dsgbench\n  pool: ${ctx.env.pool}/repos\n  mountpoint: ${ctx.env.poolMount}/repos\n`
      : `  type: posix\n  host: dsgbench\n  root: ${path.join(ctx.work, 'posix-repos')}\n`;
  writeFileSync(
    path.join(project, '.dsgconfig.yml'),
    `name: ${name}\nrepository:\n${repo}  agent: ${agentCmd(ctx, rssFile)}\ndata_dirs: [input, output]\n`,
  );
  rmSync(path.join(project, '.dsg'), { recursive: true, force: true });
}

function dsg(ctx, cwd, args) {
  return timed('node', [path.join(ctx.repoRoot, 'apps/cli/dist/main.js'), ...args], { cwd, env: userEnv(ctx) });
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

/**
 * zfs destroy -r, retried while zfs-fuse says busy (it does for a moment after
 * the agent's last unmount); a repository left behind would fill the pool.
 */
function destroyDataset(ds) {
  for (let i = 0; ; i++) {
    const r = run('zfs', ['destroy', '-r', ds], { allowFail: true });
    if (r.status === 0 || /does not exist/.test(r.stderr) || i >= 50) return;
    run('sleep', ['0.2']);
  }
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

/** `git status` on `project`, its tree committed first (once; .dsg/ ignored) as a git user would have it. */
function gitStatusSeries(ctx, project) {
  if (!existsSync(path.join(project, '.git'))) {
    writeFileSync(path.join(project, '.gitignore'), '.dsg/\n');
    run('git', ['init', '-q'], { cwd: project });
    run('git', ['add', '-A'], { cwd: project });
    run('git', ['-c', 'user.email=b@e', '-c', 'user.name=b', 'commit', '-qm', 'bench'], { cwd: project });
  }
  return series({ runs: ctx.runs, measure: () => timed('git', ['status', '--porcelain'], { cwd: project }) });
}

function ratio(a, b) {
  return `${(a.median / b.median).toFixed(2)}×`;
}

function push(ctx, workload, tool, s, extra = {}) {
  ctx.rows.push({ workload, tool, ...s, ...extra });
  const agent = s.agentRssMiB ? `, agent ${s.agentRssMiB.toFixed(0)} MiB` : '';
  console.log(
    `   ${tool.padEnd(28)} median ${s.median.toFixed(3)}s  (min ${s.min.toFixed(3)}, max ${s.max.toFixed(3)})${s.rssMiB ? `  peak RSS ${s.rssMiB.toFixed(0)} MiB${agent}` : ''}`,
  );
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
      const agg = (xs) => {
        const s = xs.map((x) => x.secs).sort((p, q) => p - q);
        return {
          min: s[0],
          median: s[Math.floor(s.length / 2)],
          max: s[s.length - 1],
          rssMiB: Math.max(...xs.map((x) => x.rssMiB || 0)) || null,
        };
      };
      const ds = agg(d),
        rs = agg(r);
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
];
