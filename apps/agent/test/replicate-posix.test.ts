import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, lstatSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { newTransactionId, type HasherFactory } from '@dsg/contracts';
import { PosixRemoteFilesystem, posixHost, type PosixHost } from '@dsg/posix-ops';
import { requireSsh } from '@dsg/testenv';
import { RepositoryLock } from '@dsg/transports/server';
import { createAgentHasher } from '../src/hasher.js';
import { BUNDLE, hashOf, holder, snap, tempDir, until } from './helpers.js';

const ssh = requireSsh();

let hasher: HasherFactory;
beforeAll(async () => (hasher = await createAgentHasher()));

let tmp: { dir: string; remove(): Promise<void> };
let base: string;
let replicas: string;
let host: PosixHost;
beforeEach(async () => {
  tmp = await tempDir('dsg-repl-posix-');
  base = join(tmp.dir, 'primary');
  replicas = join(tmp.dir, 'replicas');
  spawnSync('mkdir', [base, replicas]);
  host = posixHost({ root: base, hasher });
});
afterEach(async () => {
  // snapshots are sealed read-only: open them up so the temp dir can go
  spawnSync('chmod', ['-R', 'u+w', tmp.dir]);
  await tmp.remove();
});

/** One committed snapshot `sN` of a repository on the primary: files written, paths deleted. */
async function commit(id: string, files: Record<string, Buffer | null>, repo = 'proj', mtime?: string): Promise<void> {
  const fs = host.open(repo);
  const tx = newTransactionId();
  await fs.begin(tx);
  for (const [p, data] of Object.entries(files)) {
    if (data === null) await fs.deleteFile(tx, p);
    else
      await fs.writeFile(tx, p, Readable.from([data]), {
        hash: hashOf(hasher, data),
        size: data.length,
        ...(mtime ? { mtime } : {}),
      });
  }
  await fs.commit(tx, snap(id));
}

interface Report {
  replicated: { repository: string; sent: string[]; head: string | null; target: string; bytesSent: number }[];
  failed: { repository: string; error: { code: string; message: string } }[];
  error: { code: string; message: string };
}

const to = (): string => `${ssh!.user}@${ssh!.host}:${replicas}`;
const sshFlags = (): string[] => [
  '--ssh-port',
  String(ssh!.port),
  '--ssh-key',
  ssh!.key,
  '--ssh-option',
  `UserKnownHostsFile=${ssh!.knownHosts}`,
];

function agent(args: string[], root = base): { status: number | null; stdout: string; stderr: string; json: Report } {
  const r = spawnSync('node', [BUNDLE, args[0]!, '--type', 'posix', '--root', root, ...args.slice(1)], {
    encoding: 'utf8',
  });
  let json = {} as Report;
  try {
    json = JSON.parse(r.stdout) as Report;
  } catch {
    /* text output */
  }
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, json };
}
const replicate = (...extra: string[]): ReturnType<typeof agent> =>
  agent(['replicate', '--to', to(), ...sshFlags(), ...extra]);

/** Every entry below dir: kind, mode and content hash (or link target); what a replica must equal. */
function tree(dir: string, skip: (rel: string) => boolean = () => false, rel = ''): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of readdirSync(join(dir, rel)).sort()) {
    const p = rel ? `${rel}/${name}` : name;
    if (skip(p)) continue;
    const full = join(dir, p);
    const st = lstatSync(full);
    const mode = (st.mode & 0o7777).toString(8);
    if (st.isSymbolicLink()) out[p] = `link ${readlinkSync(full)}`;
    else if (st.isDirectory()) {
      out[p] = `dir ${mode}`;
      Object.assign(out, tree(dir, skip, p));
    } else out[p] = `file ${mode} ${hashOf(hasher, readFileSync(full))}`;
  }
  return out;
}
/** The primary's repository as a replica must hold it: no lock, no parked uploads, no marker. */
const repoTree = (dir: string): Record<string, string> =>
  tree(dir, (p) => p === 'lock' || p === 'parked' || p === 'replica-of');

describe.skipIf(!ssh)('dsg-agent replicate --type posix (rsync over the real sshd)', () => {
  it('replicates after each of three syncs: same bytes, hard links kept, marker; a re-run sends nothing; begin refused there', async () => {
    const steps: [string, Record<string, Buffer | null>][] = [
      ['s1', { 'input/a.csv': Buffer.from('a,1\n'), 'input/b.bin': randomBytes(20_000) }],
      ['s2', { 'input/a.csv': Buffer.from('a,2\n'), 'output/c.txt': Buffer.from('c') }],
      ['s3', { 'input/b.bin': null, 'output/d.bin': randomBytes(10_000) }],
    ];
    for (const [id, files] of steps) {
      await commit(id, files);
      const r = replicate('--json');
      expect(r.status, r.stderr).toBe(0);
      expect(r.json.replicated).toHaveLength(1);
      expect(r.json.replicated[0]).toMatchObject({
        repository: 'proj',
        sent: [id],
        head: id,
        target: `${ssh!.host}:${replicas}/proj`,
      });
      expect(r.json.replicated[0]!.bytesSent).toBeGreaterThan(0);
      expect(repoTree(join(replicas, 'proj'))).toEqual(repoTree(join(base, 'proj')));
    }
    const rep = join(replicas, 'proj');
    expect(readFileSync(join(rep, 'replica-of'), 'utf8')).toMatch(new RegExp(`:${base}/proj\\n$`));
    // an unchanged file is one inode in s1 and s2 on the replica, as on the primary (--link-dest)
    const ino = (root: string, s: string): number => lstatSync(join(root, 'snapshots', s, 'input/b.bin')).ino;
    expect(ino(join(base, 'proj'), 's1')).toBe(ino(join(base, 'proj'), 's2'));
    expect(ino(rep, 's1')).toBe(ino(rep, 's2'));

    // a crashed transaction on the primary: recovered first, its work area never sent
    await host.open('proj').begin(newTransactionId());
    expect(existsSync(join(base, 'proj', 'tx'))).toBe(true);
    const again = replicate();
    expect(again.status, again.stderr).toBe(0);
    expect(again.stdout).toBe(`proj: ${ssh!.host}:${replicas}/proj is up to date at s3\n`);
    expect(again.stderr).toContain('recovery before replication');
    expect(repoTree(rep)).toEqual(repoTree(join(base, 'proj')));
    expect(existsSync(join(rep, 'tx'))).toBe(false);

    // the replica reads like the primary, and refuses to begin a transaction, naming the primary
    const replica = new PosixRemoteFilesystem({ root: rep, hasher });
    expect((await replica.listSnapshots()).map((s) => [s.snapshotId, s.message])).toEqual([
      ['s1', 'snapshot s1'],
      ['s2', 'snapshot s2'],
      ['s3', 'snapshot s3'],
    ]);
    const before = tree(rep);
    const err = await replica.begin(newTransactionId()).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ZFS_REPLICA' });
    expect((err as Error).message).toContain(`is a read-only replica of `);
    expect((err as Error).message).toContain(`:${base}/proj`);
    expect(tree(rep)).toEqual(before);
  });

  it('a file rewritten with the same size and mtime gets its new bytes, not a link to the old ones (rsync’s quick check)', async () => {
    const mtime = '2025-01-01T00:00:00.000Z';
    const kept = randomBytes(5000);
    await commit('s1', { 'input/a.csv': Buffer.from('a,1\n'), 'input/kept.bin': kept }, 'proj', mtime);
    const first = replicate();
    expect(first.status, first.stderr).toBe(0);
    await commit('s2', { 'input/a.csv': Buffer.from('a,2\n') }, 'proj', mtime);
    const r = replicate('--json');
    expect(r.status, r.stderr).toBe(0);
    expect(r.json.replicated[0]).toMatchObject({ sent: ['s2'], head: 's2' });
    const rep = join(replicas, 'proj');
    expect(repoTree(rep)).toEqual(repoTree(join(base, 'proj')));
    expect(readFileSync(join(rep, 'snapshots/s2/input/a.csv'), 'utf8')).toBe('a,2\n');
    expect(readFileSync(join(rep, 'snapshots/s1/input/a.csv'), 'utf8')).toBe('a,1\n');
    // the unchanged file is still one inode across the two snapshots
    const ino = (s: string): number => lstatSync(join(rep, 'snapshots', s, 'input/kept.bin')).ino;
    expect(ino('s1')).toBe(ino('s2'));
  });

  it('rsync killed mid-snapshot leaves no snapshot that looks complete; the re-run ends consistent', async () => {
    await commit('s1', { 'a.csv': Buffer.from('a') });
    expect(replicate().status).toBe(0);
    await commit('s2', { 'big.bin': randomBytes(4 * 1024 * 1024) });
    // an rsync that records its pid and goes slowly, so the test can kill it mid-stream
    const pidFile = join(tmp.dir, 'rsync.pid');
    const slow = join(tmp.dir, 'slow-rsync');
    writeFileSync(slow, `#!/bin/sh\necho $$ > '${pidFile}'\nexec rsync --bwlimit=256 "$@"\n`);
    chmodSync(slow, 0o755);
    const child = spawn(
      'node',
      [BUNDLE, 'replicate', '--type', 'posix', '--root', base, '--to', to(), ...sshFlags(), '--rsync', slow, '--json'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    const incoming = join(replicas, 'proj', 'snapshots', '.incoming-s2');
    // mid-stream: rsync's temporary copy of big.bin has bytes in it
    await until(
      () =>
        existsSync(incoming) &&
        readdirSync(incoming).some((n) => n.startsWith('.big.bin.') && lstatSync(join(incoming, n)).size > 0),
      60_000,
      'a partial big.bin on the replica',
    );
    process.kill(Number(readFileSync(pidFile, 'utf8').trim()), 'SIGKILL');
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(code).toBe(1);
    expect((JSON.parse(stdout) as Report).failed[0]!.error.message).toMatch(/rsync to .* failed/);
    // the replica is still at s1: s2 is only a dot name, which no reader takes for a snapshot
    const rep = join(replicas, 'proj');
    expect(readlinkSync(join(rep, 'current'))).toBe('snapshots/s1');
    expect(existsSync(join(rep, 'snapshots', 's2'))).toBe(false);
    const replica = new PosixRemoteFilesystem({ root: rep, hasher });
    expect((await replica.listSnapshots()).map((s) => s.snapshotId)).toEqual(['s1']);

    const r = replicate('--json');
    expect(r.status, r.stderr).toBe(0);
    expect(r.json.replicated[0]).toMatchObject({ sent: ['s2'], head: 's2' });
    expect(repoTree(rep)).toEqual(repoTree(join(base, 'proj')));
    expect(readdirSync(join(rep, 'snapshots')).filter((n) => n.startsWith('.'))).toEqual([]);
  });

  it('refuses a locked repository, sends nothing of it, and goes on with the others', async () => {
    await commit('s1', { 'a.csv': Buffer.from('a') });
    await commit('s1', { 'b.csv': Buffer.from('b') }, 'beta');
    const lock = new RepositoryLock(host.lockFile('proj'));
    await lock.acquire(holder('bob@example.org'));
    try {
      const r = replicate('--json');
      expect(r.status, r.stderr).toBe(1);
      expect(r.json.failed.map((f) => [f.repository, f.error.code])).toEqual([['proj', 'LOCKED']]);
      expect(r.json.failed[0]!.error.message).toContain('bob@example.org');
      expect(r.json.replicated.map((x) => x.repository)).toEqual(['beta']);
      expect(readdirSync(replicas)).toEqual(['beta']);
    } finally {
      await lock.release();
    }
  });

  it('bad --to, relative or traversing paths, unsafe ssh options and foreign targets are refused, changing nothing', async () => {
    await commit('s1', { 'a.csv': Buffer.from('a') });
    // the parser's whole table is in posix-ops' replicate-args test; here the agent's path end to end
    const cases: [string[], RegExp][] = [
      [['--to', 'replicas'], /target path/],
      [['--to', `${ssh!.host}:${replicas}/../x`], /target path/],
      [['--to', `${ssh!.host}:${replicas}/a b`], /target path/],
      [['--to', `-oProxyCommand=x:${replicas}`], /target host/],
      [['--to', to(), '--ssh-key', '/k $(x)'], /refused ssh key path/],
      [['--to', to(), '--repository', '../x'], /repository name|invalid|refused/i],
    ];
    for (const [args, message] of cases) {
      const r = agent(['replicate', ...args]);
      expect(r.status, args.join(' ')).not.toBe(0);
      expect(r.stderr, args.join(' ')).toMatch(message);
      expect(r.stderr, args.join(' ')).toContain('hint:');
    }
    const rel = agent(['replicate', '--to', to(), ...sshFlags()], 'primary');
    expect(rel.status).not.toBe(0);
    expect(rel.stderr).toMatch(/absolute/);
    expect(readdirSync(replicas)).toEqual([]);

    // a directory that is no replica, and a replica of another primary, are never written
    spawnSync('mkdir', [join(replicas, 'proj')]);
    writeFileSync(join(replicas, 'proj', 'keep.txt'), 'mine');
    const foreign = replicate('--json');
    expect(foreign.status).toBe(1);
    expect(foreign.json.failed[0]!.error.message).toContain('is no replica');
    expect(tree(replicas)).toEqual({
      proj: 'dir 755',
      'proj/keep.txt': `file 644 ${hashOf(hasher, Buffer.from('mine'))}`,
    });
    spawnSync('rm', ['-r', join(replicas, 'proj')]);
    expect(replicate('--primary-name', 'other.example').status).toBe(0);
    const before = tree(replicas);
    const other = replicate('--json');
    expect(other.status).toBe(1);
    expect(other.json.failed[0]!.error.message).toContain('is a replica of other.example:');
    expect(tree(replicas)).toEqual(before);
  });
});
