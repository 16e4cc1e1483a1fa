import { spawn } from 'node:child_process';
import { lstat, mkdtemp, readdir, readFile, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ConfigError, DsgError, ValidationError, sshArgv, type SshOptions } from '@dsg/contracts';
import { errno } from './fs-util.js';
import { CURRENT, Layout, SNAPSHOTS, TEMP_LINK_PREFIX, snapshotNumber } from './layout.js';

/**
 * Replication of a snapshot-layout repository with rsync (over ssh, or to
 * another directory here). Snapshot directories never change once
 * committed, so a replica is the `snapshots/sN` (and `sN.json`) it lacks
 * plus `current`:
 *
 *   1. probe the replica (one remote command): marker, `current`, entries;
 *   2. the metadata `sN.json` of the new snapshots (rsync writes each to a
 *      temporary name and renames it, as the primary writes it before sN/);
 *   3. each new snapshot, oldest first, into `snapshots/.incoming-sN`
 *      (hard-linked against the previous one with --link-dest), renamed to
 *      `sN` only when rsync finished: a killed run leaves a dot name, which
 *      never looks like a snapshot and the next run (or recovery after a
 *      promote) removes;
 *   4. `current` switched last by the rename of a new link over it.
 *
 * The replica carries REPLICA_MARKER (`<repo>/replica-of`, naming the
 * primary) from its first byte on; PosixRemoteFilesystem refuses to begin a
 * transaction there. Remote commands are fixed `sh -c` scripts whose values
 * come as positional arguments, never pasted into the script.
 */

/** The file in a replica's repository directory naming its primary (`<host>:<path>`). */
export const REPLICA_MARKER = 'replica-of';
/** A snapshot on its way in: renamed to `sN` when complete. Starts with `.` (recovery removes it). */
export const INCOMING_PREFIX = '.incoming-';

/** Where `--to` points: `[user@]host:/abs/parent` over ssh, or `/abs/parent` on this machine. */
export interface PosixReplicaTarget {
  host?: string;
  user?: string;
  parent: string;
}

/** How rsync and the remote commands reach the replica host (ssh -p, -i, -o). */
export type RsyncSsh = SshOptions;

/**
 * rsync splits its `-e` command line on blanks and quotes by itself, so the
 * ssh arguments dsg puts there, and the host, user and paths it passes, are
 * held to a charset with no meaning to rsync, ssh or a shell, never
 * starting with `-`.
 */
const RSYNC_SAFE = /^[A-Za-z0-9_/][A-Za-z0-9_.@/=+,-]*$/;

function refused(what: string, value: string, hint: string): ValidationError {
  return new ValidationError(
    `refused ${what} ${JSON.stringify(String(value).slice(0, 100))}`,
    { field: what },
    { recoveryHint: hint },
  );
}

export function assertRsyncArg(what: string, value: string): void {
  if (typeof value !== 'string' || value.length > 1024 || !RSYNC_SAFE.test(value)) {
    throw refused(what, value, 'Use letters, digits and _ . @ / = + , - only (not starting with -).');
  }
}

/** An absolute, normalized directory path of safe characters (no `..`, no `//`, no trailing `/`). */
export function assertReplicaPath(what: string, p: string): void {
  const hint = 'Give an absolute path such as /srv/dsg-replicas: letters, digits and _ . @ = + , - only, no .. parts.';
  if (typeof p !== 'string' || !p.startsWith('/') || p.length > 4096 || !RSYNC_SAFE.test(p)) {
    throw refused(what, p, hint);
  }
  if (p !== '/' && (path.posix.normalize(p) !== p || p.endsWith('/') || p.split('/').includes('..'))) {
    throw refused(what, p, hint);
  }
}

export function parsePosixReplicaTarget(to: string): PosixReplicaTarget {
  const m = /^(?:(?:([^@:/]+)@)?([^@:/]+):)?(.*)$/s.exec(typeof to === 'string' ? to : '');
  const hint =
    'Give [user@]host:/abs/parent (a replica host over ssh) or /abs/parent (a directory here); the repositories are copied to <parent>/<name>.';
  if (!m || !to) {
    throw new ConfigError(
      `--to ${JSON.stringify(to)} is not [user@]host:/abs/parent`,
      { field: 'to' },
      { recoveryHint: hint },
    );
  }
  const [, user, host, parent] = m;
  try {
    assertReplicaPath('target path', parent!);
    if (host !== undefined) assertRsyncArg('target host', host);
    if (user !== undefined) assertRsyncArg('target user', user);
  } catch (e) {
    throw new ConfigError(
      `--to ${JSON.stringify(to)}: ${(e as Error).message}`,
      { field: 'to' },
      { recoveryHint: hint },
    );
  }
  return { ...(user !== undefined ? { user } : {}), ...(host !== undefined ? { host } : {}), parent: parent! };
}

/** ssh's arguments before the destination (contracts' sshArgv), with the key and options held to what rsync's -e carries. */
export function sshArgs(ssh: RsyncSsh = {}): string[] {
  if (ssh.key !== undefined) assertRsyncArg('ssh key path', ssh.key);
  for (const o of ssh.options ?? []) assertRsyncArg('ssh option', o);
  return sshArgv(ssh);
}

export interface ReplicatePosixOptions {
  /** the repository directory on this machine; the caller holds its lock and ran recovery */
  source: string;
  /** the replica parent; the repository goes to `<parent>/<basename of source>` */
  target: PosixReplicaTarget;
  /** the marker's text: `<primary host>:<source path>` */
  primary: string;
  ssh?: RsyncSsh;
  /**
   * An argv to run on the replica host → the argv that runs it from here
   * (`ssh … host '<quoted argv>'`). Required for a target with a host.
   */
  remote?: (argv: string[]) => string[];
  /** the rsync binary (default `rsync` from PATH) */
  rsync?: string;
  log?: (line: string) => void;
}

export interface PosixReplicationReport {
  source: string;
  target: string;
  /** the `sN` this run added to the replica, oldest first */
  sent: string[];
  /** the replica's `current` after the run (null: the source has no snapshot yet) */
  head: string | null;
  /** what rsync reported sending (its `Total bytes sent`), over all its runs */
  bytesSent: number;
}

interface Probe {
  state: 'absent' | 'no-parent' | 'not-dir' | 'present';
  marker: string | null;
  current: string | null;
  entries: string[];
  top: string[];
  headMeta: string | null;
}

// Fixed scripts: `$1…` are the values, passed as arguments (quoted for ssh by `remote`).
const PROBE = `set -e
dir=$1
if [ ! -e "$dir" ] && [ ! -L "$dir" ]; then
  if [ -d "$(dirname "$dir")" ]; then echo state:absent; else echo state:no-parent; fi
  exit 0
fi
if [ -L "$dir" ] || [ ! -d "$dir" ]; then echo state:not-dir; exit 0; fi
echo state:present
for e in "$dir"/* "$dir"/.[!.]*; do
  if [ -e "$e" ] || [ -L "$e" ]; then printf 'top:%s\\n' "\${e##*/}"; fi
done
if [ -f "$dir/${REPLICA_MARKER}" ]; then printf 'marker:%s\\n' "$(head -n 1 "$dir/${REPLICA_MARKER}")"; fi
if [ -d "$dir/${SNAPSHOTS}" ]; then
  for e in "$dir/${SNAPSHOTS}"/* "$dir/${SNAPSHOTS}"/.[!.]*; do
    if [ -e "$e" ] || [ -L "$e" ]; then printf 'entry:%s\\n' "\${e##*/}"; fi
  done
fi
if [ -L "$dir/${CURRENT}" ]; then
  c=$(readlink "$dir/${CURRENT}")
  printf 'current:%s\\n' "$c"
  if [ -f "$dir/$c.json" ]; then echo meta:; cat "$dir/$c.json"; fi
fi
`;

/**
 * Makes the replica directory and its marker, and removes what a killed run
 * left: directories made writable to empty them, never the files (they are
 * hard links shared with complete snapshots, --link-dest).
 */
const PREPARE = `set -e
dir=$1
[ -d "$dir" ] || mkdir "$dir"
mkdir -p "$dir/${SNAPSHOTS}"
if [ ! -f "$dir/${REPLICA_MARKER}" ]; then
  printf '%s\\n' "$2" > "$dir/.${REPLICA_MARKER}.tmp"
  mv -f "$dir/.${REPLICA_MARKER}.tmp" "$dir/${REPLICA_MARKER}"
fi
for e in "$dir/${SNAPSHOTS}"/${INCOMING_PREFIX}*; do
  if [ -e "$e" ]; then find "$e" -type d -exec chmod u+w {} +; rm -rf "$e"; fi
done
`;

/** `$2`: the snapshot whose incoming copy is complete (or empty); `$3`: the new `current` target (or empty). */
const FINISH = `set -e
dir=$1
if [ -n "$2" ]; then mv -T "$dir/${SNAPSHOTS}/${INCOMING_PREFIX}$2" "$dir/${SNAPSHOTS}/$2"; fi
if [ -n "$3" ]; then
  rm -f "$dir/${TEMP_LINK_PREFIX}replicate"
  ln -s "$3" "$dir/${TEMP_LINK_PREFIX}replicate"
  mv -fT "$dir/${TEMP_LINK_PREFIX}replicate" "$dir/${CURRENT}"
fi
`;

/**
 * A script as one line: sshd runs the command through the remote shell,
 * and the quoting (shellCommand) refuses control characters such as
 * newlines, so lines become `;`-separated (none after `then`, `do`, `else`).
 */
function oneLine(script: string): string {
  return script
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .map((l) => (/(?:\bthen|\bdo|\belse)$/.test(l) ? `${l} ` : `${l}; `))
    .join('')
    .trim();
}

interface Ran {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function run(argv: string[]): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], shell: false });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.on('close', (code, signal) =>
      resolve({
        code,
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      }),
    );
  });
}

function parseProbe(out: string): Probe {
  const p: Probe = { state: 'absent', marker: null, current: null, entries: [], top: [], headMeta: null };
  const lines = out.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line === 'meta:') {
      p.headMeta = lines.slice(i + 1).join('\n');
      break;
    }
    const colon = line.indexOf(':');
    const [k, v] = [line.slice(0, colon), line.slice(colon + 1)];
    if (k === 'state') p.state = v as Probe['state'];
    else if (k === 'marker') p.marker = v;
    else if (k === 'current') p.current = v;
    else if (k === 'entry') p.entries.push(v);
    else if (k === 'top') p.top.push(v);
  }
  return p;
}

/** rsync's `Total bytes sent: 1,234` (separators vary by locale and version). */
export function rsyncBytesSent(output: string): number {
  const m = /Total bytes sent:\s*([0-9.,']+)/.exec(output);
  return m ? Number(m[1]!.replace(/[^0-9]/g, '')) : 0;
}

function refuse(message: string, hint: string): DsgError {
  return new DsgError('VALIDATION', message, { recoveryHint: hint });
}

interface Meta {
  transactionId?: string;
  manifestHash?: string;
}

function sameSnapshot(a: string | null, b: Meta | null): boolean {
  if (a === null || b === null) return false;
  try {
    const m = JSON.parse(a) as Meta;
    return m.transactionId === b.transactionId && m.manifestHash === b.manifestHash;
  } catch {
    return false;
  }
}

async function readMeta(file: string): Promise<Meta | null> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as Meta;
  } catch (e) {
    if (errno(e) === 'ENOENT') return null;
    throw e;
  }
}

/**
 * Copies one snapshot-layout repository to its replica with rsync: the
 * committed snapshots the replica lacks, oldest first, then `current`. The
 * replica must be absent (its parent present), an empty directory, or a
 * replica of this very primary whose `current` is one of ours (same
 * transaction and manifest): dsg never writes over a directory it did not
 * make, nor over a promoted copy that moved on. A re-run with nothing new
 * runs one probe and sends nothing.
 */
export async function replicatePosixRepository(o: ReplicatePosixOptions): Promise<PosixReplicationReport> {
  const name = path.basename(o.source);
  const layout = new Layout(o.source);
  const dir = path.posix.join(o.target.parent, name);
  assertReplicaPath('target path', dir);
  if (o.target.host !== undefined) {
    assertRsyncArg('target host', o.target.host);
    if (o.target.user !== undefined) assertRsyncArg('target user', o.target.user);
    if (!o.remote) throw new DsgError('INTERNAL', 'a remote replica needs a remote command runner');
  }
  const where = o.target.host !== undefined ? `${o.target.host}:${dir}` : dir;
  const rsyncDest = (p: string): string =>
    o.target.host !== undefined ? `${o.target.user !== undefined ? `${o.target.user}@` : ''}${o.target.host}:${p}` : p;
  const e = o.target.host !== undefined ? ['-e', ['ssh', ...sshArgs(o.ssh)].join(' ')] : [];
  const script = async (what: string, text: string, args: string[]): Promise<string> => {
    const argv = ['sh', '-c', oneLine(text), 'sh', ...args];
    const r = await run(o.target.host !== undefined ? o.remote!(argv) : argv);
    if (r.code !== 0) {
      throw new DsgError(
        'IO',
        `${what} on ${where} failed (exit ${String(r.code ?? r.signal)}): ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`,
        { recoveryHint: 'Check ssh access to the replica host and that its user may write the target directory.' },
      );
    }
    return r.stdout;
  };
  const report: PosixReplicationReport = { source: o.source, target: where, sent: [], head: null, bytesSent: 0 };
  const rsync = async (args: string[]): Promise<void> => {
    const r = await run([o.rsync ?? 'rsync', '-aH', '--numeric-ids', '--stats', ...e, ...args]);
    for (const line of `${r.stdout}${r.stderr}`.split('\n')) if (line.trim()) o.log?.(`rsync: ${line}`);
    if (r.code !== 0) {
      throw new DsgError(
        'IO',
        `rsync to ${where} failed (exit ${String(r.code ?? r.signal)}): ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`,
        {
          recoveryHint:
            'Nothing half-copied looks like a snapshot on the replica (incoming copies have a dot name); run replicate again.',
        },
      );
    }
    report.bytesSent += rsyncBytesSent(r.stdout);
  };

  // the source: every committed snapshot up to current (recovery removed anything above it)
  let cur = 0;
  try {
    cur = Layout.parseLinkTarget(await readlink(layout.current)) ?? 0;
  } catch (err) {
    if (errno(err) !== 'ENOENT') throw err;
  }
  if (cur === 0) return report;
  const local: number[] = [];
  for (const ent of await readdir(layout.snapshots, { withFileTypes: true })) {
    const n = snapshotNumber(ent.name);
    if (ent.isDirectory() && n !== null && n <= cur) local.push(n);
  }
  local.sort((a, b) => a - b);

  const probe = parseProbe(await script('probe', PROBE, [dir]));
  if (probe.state === 'no-parent') {
    throw refuse(
      `the replica parent ${o.target.parent} does not exist${o.target.host !== undefined ? ` on ${o.target.host}` : ''}`,
      `Create it first (mkdir ${o.target.parent}); the repositories are copied beneath it.`,
    );
  }
  if (probe.state === 'not-dir') {
    throw refuse(`${where} exists and is not a directory`, 'Replicate to another parent directory.');
  }
  const remote = new Set<number>();
  if (probe.state === 'present' && probe.top.length) {
    if (probe.marker === null) {
      throw refuse(
        `${where} exists and is no replica (it has no ${REPLICA_MARKER}): dsg never writes over it`,
        `Replicate to another parent directory, or remove ${dir} on that host if it is an old copy.`,
      );
    }
    if (probe.marker !== o.primary) {
      throw refuse(
        `${where} is a replica of ${probe.marker}, not of ${o.primary}`,
        'Replicate to another parent directory, or remove that replica first.',
      );
    }
    for (const ent of probe.entries) {
      const n = snapshotNumber(ent);
      if (n !== null) remote.add(n);
    }
    if (probe.current !== null) {
      const head = Layout.parseLinkTarget(probe.current);
      if (head === null || head > cur || !sameSnapshot(probe.headMeta, await readMeta(layout.snapshotMeta(head)))) {
        throw refuse(
          `${where} is at ${probe.current}, which is not ${o.source}'s ${head !== null ? `s${head}` : 'snapshot'}: the replica moved on by itself (was it promoted?)`,
          `Keep it as the primary, or remove ${dir} on that host and replicate again.`,
        );
      }
    }
  }
  report.head = `s${cur}`;
  const missing = local.filter((n) => !remote.has(n));
  const currentOk = probe.current === Layout.linkTarget(cur);
  if (!missing.length && currentOk) return report;

  await script('prepare', PREPARE, [dir, o.primary]);
  const metas: string[] = [];
  for (const n of missing) {
    if (await exists(layout.snapshotMeta(n))) metas.push(layout.snapshotMeta(n));
  }
  if (metas.length) await rsync(['--', ...metas, rsyncDest(`${dir}/${SNAPSHOTS}/`)]);
  let previous = [...remote].filter((n) => n < (missing[0] ?? 0)).sort((a, b) => b - a)[0];
  for (const [i, n] of missing.entries()) {
    const linkDest = previous !== undefined ? [`--link-dest=../s${previous}`] : [];
    const incoming = rsyncDest(`${dir}/${SNAPSHOTS}/${INCOMING_PREFIX}s${n}/`);
    await rsync([...linkDest, '--', `${layout.snapshot(n)}/`, incoming]);
    // --link-dest links by rsync's quick check (size and mtime): a file rewritten with the same size
    // within the same second would be linked to the older content. The primary knows better: its
    // snapshots share an inode exactly where a file is unchanged. Those that do not are sent again,
    // whatever their size and mtime say (-I), replacing the wrong link (rsync writes beside, renames).
    const changed = previous !== undefined ? await changedFiles(layout.snapshot(previous), layout.snapshot(n)) : [];
    if (changed.length) {
      const list = await mkdtemp(path.join(tmpdir(), 'dsg-replicate-'));
      try {
        const from = path.join(list, 'changed');
        await writeFile(from, changed.map((p) => `${p}\0`).join(''));
        await rsync(['-I', '--from0', `--files-from=${from}`, '--', `${layout.snapshot(n)}/`, incoming]);
      } finally {
        await rm(list, { recursive: true, force: true });
      }
    }
    // the rename makes it a snapshot; the last one's goes with the switch of current
    const last = i === missing.length - 1;
    await script('rename', FINISH, [dir, `s${n}`, last ? Layout.linkTarget(cur) : '']);
    report.sent.push(`s${n}`);
    previous = n;
  }
  if (!missing.length) await script('switch', FINISH, [dir, '', Layout.linkTarget(cur)]);
  return report;
}

/**
 * The regular files of snapshot `to` that snapshot `from` also has, under
 * another inode: rewritten between them (an unchanged file is a hard link
 * from one snapshot to the next). Paths relative to `to`, in walk order.
 */
export async function changedFiles(from: string, to: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    for (const d of await readdir(path.join(to, rel), { withFileTypes: true })) {
      const p = rel ? `${rel}/${d.name}` : d.name;
      if (d.isDirectory()) await walk(p);
      else if (d.isFile()) {
        const old = await lstat(path.join(from, p)).catch(() => null);
        if (!old?.isFile()) continue; // new here: nothing to link it to
        const now = await lstat(path.join(to, p));
        if (old.ino !== now.ino || old.dev !== now.dev) out.push(p);
      }
    }
  };
  await walk('');
  return out;
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}

/** The primary a replica directory names, or null when it is none. */
export async function replicaOf(repositoryRoot: string): Promise<string | null> {
  try {
    const text = await readFile(path.join(repositoryRoot, REPLICA_MARKER), 'utf8');
    return text.split('\n')[0]!.trim() || '?';
  } catch (e) {
    if (errno(e) === 'ENOENT' || errno(e) === 'ENOTDIR') return null;
    throw e;
  }
}

/** The refusal of a write transaction on a replica, naming its primary (the code the ZFS replicas use). */
export function posixReplicaError(root: string, primary: string): DsgError {
  return new DsgError(
    'ZFS_REPLICA',
    `${root} is a read-only replica of ${primary}: dsg does not write to it (clone, status, log and validate-chain work)`,
    {
      recoveryHint: `Sync to the primary ${primary}. If the primary is gone for good, make this replica the primary on its host (dsg-agent promote --type posix --path <parent> --repository <name>) and point the project at it.`,
    },
  );
}

/**
 * Makes a replica a primary: removes its marker (an incoming copy a killed
 * replication left has a dot name, which recovery removes). Returns the primary it replicated; refused when
 * the directory is no replica. The caller holds the repository lock.
 */
export async function promotePosixReplica(repositoryRoot: string): Promise<string> {
  const primary = await replicaOf(repositoryRoot);
  if (primary === null) {
    throw new DsgError(
      'VALIDATION',
      `${repositoryRoot} is not a replica (it has no ${REPLICA_MARKER}): nothing to promote`,
      { recoveryHint: 'It is a primary already.' },
    );
  }
  await rm(path.join(repositoryRoot, REPLICA_MARKER));
  return primary;
}
