import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { newTransactionId, type HasherFactory } from '@dsg/contracts';
import {
  freshParent,
  listAll,
  requireReplicaSsh,
  requireSecondPool,
  requireZfs,
  zfsRetry,
  type TestParent,
} from '@dsg/testenv';
import { RepositoryLock } from '@dsg/transports/server';
import { zfsHost, type ZfsHost } from '@dsg/zfs-ops';
import { createAgentHasher } from '../src/hasher.js';
import { BUNDLE, hashOf, holder, snap, until } from './helpers.js';

const zfs = requireZfs();
const pool2 = requireSecondPool();
const ssh = requireReplicaSsh();
const hasSyncoid = spawnSync('syncoid', ['--version'], { encoding: 'utf8' }).status === 0;
if (!hasSyncoid) {
  if (process.env['DSG_REQUIRE_REAL'] === '1') throw new Error('DSG_REQUIRE_REAL=1 but syncoid is not installed');
  console.warn('[dsg-testenv] SKIPPING replication tests: syncoid (Debian package sanoid) is not installed');
}

let hasher: HasherFactory;
beforeAll(async () => (hasher = await createAgentHasher()));

let primary: TestParent;
let replicas: TestParent;
let host: ZfsHost;
/** set by a test that stops and kills a stream: zfs-fuse keeps its snapshots busy for good */
let killedStream = false;
beforeEach(() => {
  killedStream = false;
  primary = freshParent(zfs!, 'repl');
  replicas = freshParent(pool2!, 'replicas');
  host = zfsHost({ parent: primary.dataset, mountpoint: primary.mountpoint, hasher });
});
afterEach(() => {
  primary.destroy({ leaveBusy: killedStream });
  replicas.destroy({ leaveBusy: killedStream });
});

const zfsCmd = (...args: string[]): string => execFileSync('zfs', args, { encoding: 'utf8' });

/** One committed snapshot `sN` of `proj` on the primary: files written, paths deleted. */
async function commit(id: string, files: Record<string, Buffer | null>, repo = 'proj'): Promise<void> {
  const fs = host.open(repo);
  const tx = newTransactionId();
  await fs.begin(tx);
  for (const [p, data] of Object.entries(files)) {
    if (data === null) await fs.deleteFile(tx, p);
    else await fs.writeFile(tx, p, Readable.from([data]), { hash: hashOf(hasher, data), size: data.length });
  }
  await fs.commit(tx, snap(id));
}

interface Report {
  replicated: { repository: string; sent: string[]; head: string | null; target: string }[];
  failed: { repository: string; error: { code: string; message: string } }[];
  error: { code: string; message: string };
}

function agent(args: string[]): { status: number | null; stdout: string; stderr: string; json: Report } {
  const r = spawnSync(
    'node',
    [
      BUNDLE,
      args[0]!,
      '--type',
      'zfs',
      '--pool',
      primary.dataset,
      '--mountpoint',
      primary.mountpoint,
      ...args.slice(1),
    ],
    { encoding: 'utf8' },
  );
  let json = {} as Report;
  try {
    json = JSON.parse(r.stdout) as Report;
  } catch {
    /* text output */
  }
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, json };
}

/** name → guid of the @ snapshots of a dataset. */
function snapshots(dataset: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of zfsCmd('get', '-H', '-p', '-o', 'name,value', '-r', '-d', '1', 'guid', dataset).split('\n')) {
    const [name, guid] = line.split('\t');
    if (name?.startsWith(`${dataset}@`)) out[name.slice(dataset.length + 1)] = guid!;
  }
  return out;
}

function tree(dir: string, rel = ''): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of readdirSync(join(dir, rel), { withFileTypes: true })) {
    const p = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) Object.assign(out, tree(dir, p));
    else out[p] = hashOf(hasher, readFileSync(join(dir, p)));
  }
  return out;
}

const prop = (name: string, p: string): string => zfsCmd('get', '-H', '-o', 'value', p, name).trim();

/** SIGKILL the replicate run's process group and the stream processes the watcher stopped (they may be gone). */
function killAll(groupLeader: number, stopped: string[]): void {
  try {
    process.kill(-groupLeader, 'SIGKILL');
  } catch {
    /* already gone */
  }
  for (const pid of stopped) spawnSync('kill', ['-KILL', pid]);
}

/**
 * Stops (SIGSTOP) the first real `zfs send` or `zfs receive` whose argv matches `pattern` (argv
 * starting with zfs: never the shell lines around them), the moment one appears. Skipped: syncoid's
 * size estimate (`zfs send -nvP`), which ends at once, and a process gone before the stop landed;
 * the watcher used to report such a pid as stopped while the real stream ran to its end.
 */
function stopFirstStream(pattern: string): {
  watcher: ReturnType<typeof spawn>;
  watched: Promise<unknown>;
  stopped: () => string[];
} {
  const script = [
    'while :; do',
    '  for p in $(pgrep -f "$PAT"); do',
    '    args=$(tr "\\0" " " < /proc/$p/cmdline 2>/dev/null) || continue',
    '    case " $args" in *" -n"*|*" --dryrun"*) continue ;; esac',
    '    kill -STOP "$p" 2>/dev/null && { echo "$p"; exit 0; }',
    '  done',
    'done',
  ].join('\n');
  const watcher = spawn('bash', ['-c', script], {
    env: { ...process.env, PAT: pattern },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  watcher.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const watched = new Promise((r) => watcher.on('exit', r));
  return { watcher, watched, stopped: () => out.trim().split(/\s+/).filter(Boolean) };
}

describe.skipIf(!zfs || !pool2 || !hasSyncoid)('dsg-agent replicate (syncoid, two real pools)', () => {
  it('replicates after each of three syncs: same snapshots (guids), same bytes, read-only marker; a re-run sends nothing', async () => {
    const target = `${replicas.dataset}/proj`;
    const steps: [string, Record<string, Buffer | null>][] = [
      ['s1', { 'input/a.csv': Buffer.from('a,1\n'), 'input/b.bin': randomBytes(300_000) }],
      ['s2', { 'input/a.csv': Buffer.from('a,2\n'), 'output/c.txt': Buffer.from('c') }],
      ['s3', { 'input/b.bin': null, 'output/d.bin': randomBytes(100_000) }],
    ];
    for (const [id, files] of steps) {
      await commit(id, files);
      const r = agent(['replicate', '--to', replicas.dataset, '--json']);
      expect(r.status, r.stderr).toBe(0);
      expect(r.json.replicated).toHaveLength(1);
      expect(r.json.replicated[0]).toMatchObject({ repository: 'proj', sent: [id], head: id, target });
      expect(snapshots(target)).toEqual(snapshots(`${primary.dataset}/proj`));
      expect(tree(join(replicas.mountpoint, 'proj'))).toEqual(tree(join(primary.mountpoint, 'proj')));
    }
    expect(prop(target, 'dsg:replica-of')).toMatch(new RegExp(`:${primary.dataset}/proj$`));
    expect(prop(`${target}@s2`, 'dsg:message')).toBe('snapshot s2');
    // every old snapshot's bytes too, read through the backend on the replica
    const replicaHost = zfsHost({ parent: replicas.dataset, mountpoint: replicas.mountpoint, hasher });
    const s1 = await replicaHost.open('proj').readSnapshotFile('s1', 'input/a.csv');
    const chunks: Buffer[] = [];
    for await (const c of s1!) chunks.push(Buffer.from(c));
    expect(Buffer.concat(chunks).toString()).toBe('a,1\n');
    // idempotent: nothing new, nothing sent, nothing changed
    const again = agent(['replicate', '--to', replicas.dataset]);
    expect(again.status, again.stderr).toBe(0);
    expect(again.stdout).toBe(`proj: ${target} is up to date at s3\n`);
    expect(snapshots(target)).toEqual(snapshots(`${primary.dataset}/proj`));
    // no transaction temporary was ever sent; nothing but the dataset and its @sN on the replica
    expect(listAll(replicas.dataset)).toEqual([
      replicas.dataset,
      target,
      `${target}@s1`,
      `${target}@s2`,
      `${target}@s3`,
    ]);
  });

  it('a sync into the replica is refused, naming the primary; nothing changes', async () => {
    await commit('s1', { 'input/a.csv': Buffer.from('a') });
    expect(agent(['replicate', '--to', replicas.dataset]).status).toBe(0);
    const before = listAll(replicas.dataset);
    const replicaHost = zfsHost({ parent: replicas.dataset, mountpoint: replicas.mountpoint, hasher });
    const err = await replicaHost
      .open('proj')
      .begin(newTransactionId())
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ZFS_REPLICA' });
    expect(String((err as Error).message)).toContain(`is a read-only replica of `);
    expect(String((err as Error).message)).toContain(`:${primary.dataset}/proj`);
    expect(listAll(replicas.dataset)).toEqual(before);
  });

  it('refuses a repository while a transaction holds its lock, sends nothing of it, and goes on with the others', async () => {
    await commit('s1', { 'input/a.csv': Buffer.from('a') });
    await commit('s1', { 'input/b.csv': Buffer.from('b') }, 'beta');
    const lock = new RepositoryLock(await host.lockFile('proj'));
    await lock.acquire(holder('bob@example.org'));
    try {
      const r = agent(['replicate', '--to', replicas.dataset, '--json']);
      expect(r.status, r.stderr).toBe(1);
      expect(r.json.failed).toHaveLength(1);
      expect(r.json.failed[0]!.repository).toBe('proj');
      expect(r.json.failed[0]!.error.code).toBe('LOCKED');
      expect(r.json.failed[0]!.error.message).toContain('bob@example.org');
      expect(r.json.failed[0]!.error.message).toContain('replication refused');
      expect(r.json.replicated.map((x) => x.repository)).toEqual(['beta']);
      expect(listAll(replicas.dataset)).toEqual([
        replicas.dataset,
        `${replicas.dataset}/beta`,
        `${replicas.dataset}/beta@s1`,
      ]);
      // one repository named: its refusal is the command's error
      const one = agent(['replicate', '--to', replicas.dataset, '--repository', 'proj', '--json']);
      expect(one.status).toBe(1);
      expect(one.json.error.code).toBe('LOCKED');
      expect(listAll(replicas.dataset)).toEqual([
        replicas.dataset,
        `${replicas.dataset}/beta`,
        `${replicas.dataset}/beta@s1`,
      ]);
    } finally {
      await lock.release();
    }
  });

  it("a crashed transaction's temporaries are recovered first, never sent", async () => {
    await commit('s1', { 'input/a.csv': Buffer.from('a') });
    const fs = host.open('proj');
    const tx = newTransactionId();
    await fs.begin(tx); // the writer dies here: @sync-temp and a clone stay behind
    const d = Buffer.from('half');
    await fs.writeFile(tx, 'input/half.csv', Readable.from([d]), { hash: hashOf(hasher, d), size: d.length });
    expect(listAll(primary.dataset).some((n) => n.includes('sync-temp'))).toBe(true);
    const r = agent(['replicate', '--to', replicas.dataset, '--json']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain('recovery before replication');
    const target = `${replicas.dataset}/proj`;
    expect(listAll(replicas.dataset)).toEqual([replicas.dataset, target, `${target}@s1`]);
    expect(listAll(primary.dataset).filter((n) => /sync-temp|-sync-/.test(n))).toEqual([]);
  });

  it('killed mid-stream, then run again: the replica ends complete and consistent', async () => {
    await commit('s1', { 'input/a.csv': Buffer.from('a') });
    expect(agent(['replicate', '--to', replicas.dataset]).status).toBe(0);
    await commit('s2', { 'input/big.bin': randomBytes(96 * 1024 * 1024) });
    const logFile = join(tmpdir(), `dsg-replicate-${process.pid}.log`);
    const out = openSync(logFile, 'w');
    // a watcher stops `zfs send`/`zfs receive` the moment one appears (pattern in its env, not its
    // argv, so it cannot match itself): the stream is then frozen mid-way and cannot end before the
    // kill (a stopped receive never completes the snapshot, whatever mbuffer holds)
    const {
      watcher,
      watched,
      stopped: stoppedPids,
    } = stopFirstStream(
      `^(/usr/sbin/|/sbin/)?zfs (send|receive) .*(${primary.dataset}/proj@s2|${replicas.dataset}/proj)`,
    );
    const child = spawn(
      'node',
      [
        BUNDLE,
        'replicate',
        '--type',
        'zfs',
        '--pool',
        primary.dataset,
        '--mountpoint',
        primary.mountpoint,
        '--to',
        replicas.dataset,
      ],
      { detached: true, stdio: ['ignore', out, out] },
    );
    closeSync(out);
    const exited = new Promise((r) => child.on('exit', r));
    const target = `${replicas.dataset}/proj`;
    await Promise.race([watched, exited]);
    watcher.kill();
    const pids = stoppedPids();
    try {
      expect(pids.length, readFileSync(logFile, 'utf8')).toBeGreaterThan(0);
      // frozen mid-stream: s2 not received as a rule. zfs-fuse moves a send/receive stream in its daemon
      // (the zfs command hands it the pipe), so a stopped command does not always stop the bytes: s2 may
      // then arrive whole. Never a part of it: a received snapshot is atomic, and the checks below hold
      expect([['s1'], ['s1', 's2']]).toContainEqual(Object.keys(snapshots(target)));
    } finally {
      // even when a check failed: a stopped zfs receive left behind holds the replica pool forever
      killedStream = true;
      killAll(child.pid!, pids);
    }
    await exited;
    await until(
      () => spawnSync('pgrep', ['-f', `zfs (send|receive).*(${primary.dataset}|${target})`]).status !== 0,
      120_000,
      'send/receive gone',
    );
    rmSync(logFile, { force: true });
    // what the replica holds is a prefix of the primary's history, never a half snapshot
    const mid = snapshots(target);
    expect(Object.keys(mid).every((s) => snapshots(`${primary.dataset}/proj`)[s] === mid[s])).toBe(true);
    const r = agent(['replicate', '--to', replicas.dataset, '--json']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.json.replicated[0]!.head).toBe('s2');
    expect(snapshots(target)).toEqual(snapshots(`${primary.dataset}/proj`));
    expect(tree(join(replicas.mountpoint, 'proj'))).toEqual(tree(join(primary.mountpoint, 'proj')));
    expect(listAll(replicas.dataset)).toEqual([replicas.dataset, target, `${target}@s1`, `${target}@s2`]);
  });

  it('bad input is refused with a clear error and changes nothing', async () => {
    await commit('s1', { 'input/a.csv': Buffer.from('a') });
    const cases: [string[], RegExp][] = [
      [['--to', 'host;touch /tmp/x:pool/p'], /--to .* (refused|not)/],
      [['--to', `${replicas.dataset}/../x`], /refused dataset name/],
      [['--to', replicas.dataset, '--repository', 'nope'], /no repository nope/],
      [['--to', replicas.dataset, '--repository', '../x'], /repository/],
      [['--to', `${replicas.dataset}/missing/deeper`], /parent dataset .* does not exist/],
      [['--to', replicas.dataset, '--ssh-port', '22;x'], /not a port number/],
      [['--to', 'h:pool/p', '--ssh-key', '/k $(x)'], /refused ssh key path/],
      [['--to', replicas.dataset, '--primary-name', 'a b'], /refused primary name/],
    ];
    for (const [args, re] of cases) {
      const r = agent(['replicate', ...args]);
      expect(r.status, args.join(' ')).not.toBe(0);
      expect(r.stderr, args.join(' ')).toMatch(re);
      expect(listAll(replicas.dataset)).toEqual([replicas.dataset]);
    }
    // a dataset that is not this repository's replica is never overwritten
    zfsCmd('create', `${replicas.dataset}/proj`);
    zfsCmd('snapshot', `${replicas.dataset}/proj@mine`);
    const r = agent(['replicate', '--to', replicas.dataset]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/exists and has snapshots that are not .*dsg never overwrites it/);
    expect(listAll(replicas.dataset)).toEqual([
      replicas.dataset,
      `${replicas.dataset}/proj`,
      `${replicas.dataset}/proj@mine`,
    ]);
    // a snapshot dsg did not commit on the source is refused, not sent
    zfsRetry('destroy', '-r', `${replicas.dataset}/proj`); // busy for a moment after the refused run looked at it
    zfsCmd('snapshot', `${primary.dataset}/proj@admin-copy`);
    const f = agent(['replicate', '--to', replicas.dataset]);
    expect(f.status).toBe(1);
    expect(f.stderr).toMatch(/snapshots dsg did not commit \(admin-copy\)/);
    expect(listAll(replicas.dataset)).toEqual([replicas.dataset]);
    // the original's flat xfs layout has no snapshots to replicate (posix: replicate-posix.test.ts)
    const p = spawnSync('node', [BUNDLE, 'replicate', '--type', 'xfs', '--root', '/tmp', '--to', 'x/y'], {
      encoding: 'utf8',
    });
    expect(p.status).toBe(1);
    expect(p.stderr).toMatch(/ZFS and posix repositories only \(--type xfs\)/);
  });
});

/**
 * The same over the real sshd on 127.0.0.1 into the second pool: the replica
 * host is `root@127.0.0.1`, reached with the testenv's replication key (its
 * zfs runs through the zfs-fuse compatibility wrapper; tooling/testenv/README.md).
 * Tiny files except where a stream must be in flight.
 */
describe.skipIf(!zfs || !pool2 || !hasSyncoid || !ssh)(
  'dsg-agent replicate over ssh (real sshd, two real pools)',
  () => {
    const overSsh = (): string[] => [
      '--to',
      `${ssh!.user}@${ssh!.host}:${replicas.dataset}`,
      '--ssh-port',
      String(ssh!.port),
      '--ssh-key',
      ssh!.replicaKey,
      '--ssh-option',
      `UserKnownHostsFile=${ssh!.knownHosts}`,
      '--primary-name',
      'primary.example',
    ];

    it('replicates after each of three commits: same guids, same bytes, read-only marker; a re-run sends nothing', async () => {
      const target = `${replicas.dataset}/proj`;
      const steps: [string, Record<string, Buffer | null>][] = [
        ['s1', { 'input/a.csv': Buffer.from('a,1\n'), 'input/b.bin': randomBytes(2000) }],
        ['s2', { 'input/a.csv': Buffer.from('a,2\n'), 'output/c.txt': Buffer.from('c') }],
        ['s3', { 'input/b.bin': null, 'output/d.bin': randomBytes(1000) }],
      ];
      for (const [id, files] of steps) {
        await commit(id, files);
        const r = agent(['replicate', ...overSsh(), '--json']);
        expect(r.status, r.stderr).toBe(0);
        expect(r.json.replicated[0]).toMatchObject({ sent: [id], head: id, target: `${ssh!.host}:${target}` });
        expect(snapshots(target)).toEqual(snapshots(`${primary.dataset}/proj`));
        expect(tree(join(replicas.mountpoint, 'proj'))).toEqual(tree(join(primary.mountpoint, 'proj')));
      }
      expect(prop(target, 'dsg:replica-of')).toBe(`primary.example:${primary.dataset}/proj`);
      // readonly=on was set (zfs-fuse reports its value as "off (temporary)" even where it refuses writes)
      expect(zfsCmd('get', '-H', '-o', 'source', 'readonly', target).trim()).toMatch(/^(local|temporary)$/);
      expect(prop(`${target}@s1`, 'dsg:message')).toBe('snapshot s1');
      const again = agent(['replicate', ...overSsh()]);
      expect(again.status, again.stderr).toBe(0);
      expect(again.stdout).toBe(`proj: ${ssh!.host}:${target} is up to date at s3\n`);
      expect(again.stderr).not.toMatch(/syncoid:/); // nothing new: syncoid not even started
      expect(listAll(replicas.dataset)).toEqual([
        replicas.dataset,
        target,
        `${target}@s1`,
        `${target}@s2`,
        `${target}@s3`,
      ]);
    });

    it('killed mid-stream, then run again: the replica ends complete and consistent', async () => {
      const target = `${replicas.dataset}/proj`;
      await commit('s1', { 'input/a.csv': Buffer.from('a') });
      expect(agent(['replicate', ...overSsh()]).status).toBe(0);
      // big enough that the stream cannot finish before the watcher below stops it (4 MiB could, into
      // the pipe and ssh buffers, once the test box was fast enough)
      await commit('s2', { 'input/big.bin': randomBytes(64 * 1024 * 1024) });
      // the watcher stops the real `zfs send` or `zfs receive` (argv starts with zfs: not the shell
      // lines around them) the moment one appears: a stopped receive, or a receive whose stream
      // stopped, can never complete the snapshot, whatever the pipes and ssh buffer
      const pat = `^(/usr/sbin/|/sbin/)?zfs (send|receive) .*(${primary.dataset}/proj@s2|${target})`;
      const { watcher, watched, stopped: stoppedPids } = stopFirstStream(pat);
      const logFile = join(tmpdir(), `dsg-replicate-ssh-${process.pid}.log`);
      const out = openSync(logFile, 'w');
      const child = spawn(
        'node',
        [
          BUNDLE,
          'replicate',
          '--type',
          'zfs',
          '--pool',
          primary.dataset,
          '--mountpoint',
          primary.mountpoint,
          ...overSsh(),
        ],
        { detached: true, stdio: ['ignore', out, out] },
      );
      closeSync(out);
      const exited = new Promise((r) => child.on('exit', r));
      await Promise.race([watched, exited]);
      watcher.kill();
      const pids = stoppedPids();
      try {
        expect(pids.length, readFileSync(logFile, 'utf8')).toBeGreaterThan(0);
        // s2 whole or not at all, as in the syncoid case above (zfs-fuse moves the stream itself)
        expect([['s1'], ['s1', 's2']]).toContainEqual(Object.keys(snapshots(target)));
      } finally {
        killedStream = true;
        killAll(child.pid!, pids);
      }
      await exited;
      // the far side's receive ends when its stream does (ssh gone)
      await until(() => spawnSync('pgrep', ['-f', pat]).status !== 0, 120_000, 'send/receive gone');
      rmSync(logFile, { force: true });
      const mid = snapshots(target);
      expect(Object.keys(mid).every((s) => snapshots(`${primary.dataset}/proj`)[s] === mid[s])).toBe(true);
      const r = agent(['replicate', ...overSsh(), '--json']);
      expect(r.status, r.stderr).toBe(0);
      expect(r.json.replicated[0]).toMatchObject({ sent: ['s2'], head: 's2' });
      expect(snapshots(target)).toEqual(snapshots(`${primary.dataset}/proj`));
      expect(tree(join(replicas.mountpoint, 'proj'))).toEqual(tree(join(primary.mountpoint, 'proj')));
      expect(listAll(replicas.dataset)).toEqual([replicas.dataset, target, `${target}@s1`, `${target}@s2`]);
    });
  },
);
