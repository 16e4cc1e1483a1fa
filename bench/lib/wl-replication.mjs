// Workload: replication of 10 changed files in `many-small` (10,000 files at
// --quick) to a second copy: `dsg-agent replicate` of a ZFS repository
// (syncoid to the bench's second pool on the same zfs-fuse, no ssh: with
// zfs-fuse on the target, syncoid over ssh works only for the first
// replication, see the agent README) and of a posix repository (rsync engine
// over ssh), next to a plain `rsync -a` of the same change over the same ssh. Each run
// changes the same 10 files in two copies of the project, syncs both (not
// timed) and times the three copies. Bytes: syncoid's estimate, or the size
// of the incremental `zfs send` stream when zfs-fuse gives none; the agent's
// `bytesSent` (rsync's `Total bytes sent`); rsync's own `Total bytes sent`.
import { cpSync, mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { run, timed } from './measure.mjs';
import { touchManySmall } from './data.mjs';
import { destroyDataset, dsg, dsgBin, dsgSetup, push, ratio, rsyncSsh, summary, userEnv } from './common.mjs';

const agentBin = (ctx) => path.join(ctx.repoRoot, 'apps/agent/dist/dsg-agent.mjs');

/** The agent's ssh flags for the bench host (its key and known_hosts; no ~/.ssh/config for the agent's ssh). */
function agentSsh(ctx) {
  const e = ctx.env.env;
  return [
    '--ssh-port',
    e.DSG_TEST_SSH_PORT,
    '--ssh-key',
    e.DSG_TEST_SSH_KEY,
    '--ssh-option',
    `UserKnownHostsFile=${e.DSG_TEST_SSH_KNOWN_HOSTS}`,
  ];
}

/**
 * A copy of `many-small`, its first sync made by `dsg init` (not timed) with
 * the repository and agent on the command line: dsg takes no agent command
 * from a .dsgconfig.yml of a copy that never synced.
 */
function project(ctx, name, repoArgs) {
  const dir = path.join(ctx.work, name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  cpSync(path.join(ctx.data, 'small', 'input'), path.join(dir, 'input'), { recursive: true });
  const agent = ['--agent', 'node', '--agent', agentBin(ctx)];
  run('node', [dsgBin(ctx), 'init', '--host', 'dsgbench', ...repoArgs, ...agent, '--repo-name', name, '-m', 'bench'], {
    cwd: dir,
    env: userEnv(ctx),
  });
  return dir;
}

const bytes = (n) => (n === null ? 'n/a' : `${n.toLocaleString('en')} bytes`);

export default {
  id: 'w15',
  needs: ['small'],
  title: 'replication of 10 changed files in `many-small`: dsg-agent replicate (ZFS/syncoid, posix/rsync) vs rsync -a',
  async run(ctx) {
    dsgSetup(ctx);
    const e = ctx.env.env;
    const pool2 = e.DSG_TEST_POOL2;
    if (!pool2) throw new Error('needs the second pool (DSG_TEST_POOL2)');
    const host = `${e.DSG_TEST_SSH_USER}@127.0.0.1`;
    const zfsParent = `${ctx.env.pool}/repl`;
    const zfsReplicas = `${pool2}/repl-replicas`;
    const posixRoot = path.join(ctx.work, 'repl-posix-repos');
    const posixReplicas = path.join(ctx.work, 'repl-posix-replicas');
    const rsyncDest = path.join(ctx.work, 'repl-rsync');
    destroyDataset(zfsParent);
    destroyDataset(zfsReplicas);
    run('zfs', ['create', '-p', zfsParent]);
    run('zfs', ['create', '-p', zfsReplicas]);
    mkdirSync(posixRoot, { recursive: true });
    mkdirSync(posixReplicas, { recursive: true });
    const zfsMount = run('zfs', ['get', '-H', '-o', 'value', 'mountpoint', zfsParent]).stdout.trim();
    const pz = project(ctx, 'repl-zfs', ['--repo-type', 'zfs', '--pool', zfsParent, '--repo-path', zfsMount]);
    const pp = project(ctx, 'repl-posix', ['--repo-type', 'posix', '--repo-path', posixRoot]);
    const zfsSide = ['--type', 'zfs', '--pool', zfsParent, '--mountpoint', zfsMount, '--repository', 'repl-zfs'];
    const posixSide = ['--type', 'posix', '--root', posixRoot, '--repository', 'repl-posix'];
    const replicateZfs = () => timed('node', [agentBin(ctx), 'replicate', ...zfsSide, '--to', zfsReplicas, '--json']);
    const replicatePosix = () =>
      timed('node', [
        agentBin(ctx),
        'replicate',
        ...posixSide,
        '--to',
        `${host}:${posixReplicas}`,
        ...agentSsh(ctx),
        '--json',
      ]);
    const rsync = () =>
      timed('rsync', ['-a', '--stats', ...rsyncSsh(ctx), `${pp}/input/`, `dsgbench:${rsyncDest}/`], {
        env: userEnv(ctx),
      });
    // the first copies: not timed
    replicateZfs();
    replicatePosix();
    rsync();

    const z = [],
      p = [],
      r = [];
    let zb = null,
      pb = 0,
      rb = 0;
    for (let i = 0; i < ctx.runs + 1; i++) {
      for (const dir of [pz, pp]) {
        await touchManySmall(dir, { count: 10, round: i, files: ctx.sets.small.files });
        dsg(ctx, dir, ['sync', '-m', `round ${i}`, '--quiet']);
      }
      const a = replicateZfs();
      const b = replicatePosix();
      const c = rsync();
      const za = JSON.parse(a.stdout).replicated[0];
      const pa = JSON.parse(b.stdout).replicated[0];
      if (za.sent.length !== 1 || pa.sent.length !== 1)
        throw new Error(`expected one snapshot sent: ${a.stdout} ${b.stdout}`);
      // zfs-fuse gives syncoid no estimate: the incremental stream's own size
      const prev = `s${Number(za.head.slice(1)) - 1}`;
      const stream =
        za.estimatedBytes ??
        run('sh', [
          '-c',
          'zfs send -i "$1" "$2" | wc -c',
          'sh',
          `@${prev}`,
          `${zfsParent}/repl-zfs@${za.head}`,
        ]).stdout.trim();
      const cb = Number(/Total bytes sent:\s*([\d,]+)/.exec(c.stdout)?.[1].replace(/,/g, '') ?? 0);
      if (i > 0) {
        z.push(a);
        p.push(b);
        r.push(c);
        zb = Math.max(zb ?? 0, Number(stream));
        pb = Math.max(pb, pa.bytesSent);
        rb = Math.max(rb, cb);
      }
    }
    const zs = summary(z),
      ps = summary(p),
      rs = summary(r);
    const w = 'w15 replication (10 files)';
    push(ctx, w, 'dsg-agent replicate (ZFS, syncoid, local pool)', zs, {
      sent: bytes(zb),
      ratio: `${ratio(zs, rs)} rsync`,
    });
    push(ctx, w, 'dsg-agent replicate (posix, rsync, ssh)', ps, { sent: bytes(pb), ratio: `${ratio(ps, rs)} rsync` });
    push(ctx, w, 'rsync -a (ssh)', rs, { sent: bytes(rb) });
    destroyDataset(zfsParent);
    destroyDataset(zfsReplicas);
  },
};
