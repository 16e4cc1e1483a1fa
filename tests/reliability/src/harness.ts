/**
 * Shared harness of the reliability suite: run the BUILT `dsg` binary as a
 * user would, in a sandbox (own HOME and DSG_CONFIG_HOME), against a posix
 * repository over the local transport or a ZFS repository over the real
 * sshd; list and compare trees; find transaction leftovers on the
 * repository side.
 */
import { spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  lchownSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  lstatSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { compareSnapshotIds, isSnapshotId } from '@dsg/contracts';
import {
  AGENT_BUNDLE as AGENT,
  CLI_BIN as BIN,
  freshParent,
  listAll,
  type LocalUser,
  type SshTestEnv,
  type TestParent,
  type ZfsTestEnv,
} from '@dsg/testenv';

export { REPO_ROOT as ROOT } from '@dsg/testenv';
export { AGENT, BIN };

export interface RunResult {
  /** exit code, or -1 when killed by a signal */
  code: number;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface Sandbox {
  dir: string;
  env: NodeJS.ProcessEnv;
  /** remove the sandbox directory */
  remove: () => void;
  /** the non-root user the sandbox belongs to and dsg runs as (pass it to dsgAsync/dsgAs); absent: the test's own user */
  as?: RunAs;
}

/** Whom to run the built dsg as: spawn's uid/gid (never a su/sudo command line). */
export type RunAs = Pick<LocalUser, 'user' | 'uid' | 'gid'>;

/** Give a tree to a user: lchown of every entry (links themselves, never followed). */
export function giveTo(as: Pick<RunAs, 'uid' | 'gid'>, ...paths: string[]): void {
  const walk = (p: string): void => {
    const st = lstatSync(p);
    if (st.uid !== as.uid || st.gid !== as.gid) lchownSync(p, as.uid, as.gid);
    if (st.isDirectory()) for (const n of readdirSync(p)) walk(path.join(p, n));
  };
  for (const p of paths) if (existsSync(p) || isLink(p)) walk(p);
}

const isLink = (p: string): boolean => {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
};

const runnable = new Set<number>();
/**
 * Throw (with what to do) unless `as` can run the built dsg: every directory
 * down to this checkout must be traversable by it (`testenv.sh up` sees to
 * that) and node must be executable by it.
 */
export function assertRunsAs(as: RunAs): void {
  if (runnable.has(as.uid)) return;
  const r = spawnSync(process.execPath, [BIN, '--version'], {
    uid: as.uid,
    gid: as.gid,
    cwd: '/',
    env: { PATH: process.env['PATH'] },
    encoding: 'utf8',
    timeout: 60_000,
  });
  if (r.status !== 0) {
    throw new Error(
      `${as.user} (uid ${as.uid}) cannot run ${process.execPath} ${BIN}: ${(r.stderr || r.error?.message || '').slice(0, 500)}\n` +
        'run `bash tooling/testenv/testenv.sh up` (as root): it makes the directories down to the checkout traversable for the test users',
    );
  }
  runnable.add(as.uid);
}

/**
 * A sandbox: its own HOME and DSG_CONFIG_HOME with a user config (plus `extraUserYaml`, e.g. a backend's ssh lines).
 * With `o.as`, everything in it belongs to that user (mode 700) and `sandbox.as` says whom to run dsg as.
 */
export function sandbox(
  extraUserYaml = '',
  user = 'user_id: ana@example.org\nuser_name: Ana\n',
  o: { as?: RunAs } = {},
): Sandbox {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'dsg-rel-'));
  mkdirSync(path.join(dir, 'home'));
  mkdirSync(path.join(dir, 'cfg'));
  writeFileSync(path.join(dir, 'cfg', 'dsg.yml'), user + extraUserYaml);
  const env: NodeJS.ProcessEnv = {
    PATH: process.env['PATH'],
    HOME: path.join(dir, 'home'),
    DSG_CONFIG_HOME: path.join(dir, 'cfg'),
    NO_COLOR: '1',
  };
  const sb: Sandbox = { dir, env, remove: () => rmSync(dir, { recursive: true, force: true }) };
  if (o.as) {
    assertRunsAs(o.as);
    Object.assign(env, { USER: o.as.user, LOGNAME: o.as.user });
    giveTo(o.as, dir);
    chmodSync(dir, 0o700);
    sb.as = o.as;
  }
  return sb;
}

/**
 * A sandbox of a non-root client user for SSH: copies of the key (600) and
 * known_hosts the user owns (it cannot read root's), named by its user config.
 * `key` / `knownHosts` default to the test sshd's.
 */
export function clientSandbox(
  ssh: SshTestEnv,
  as: RunAs,
  o: { key?: string; knownHosts?: string; user?: string } = {},
): Sandbox {
  const sb = o.user === undefined ? sandbox('', undefined, { as }) : sandbox('', o.user, { as });
  const sshDir = path.join(sb.dir, 'home', '.ssh');
  mkdirSync(sshDir, { mode: 0o700 });
  const key = path.join(sshDir, 'id_ed25519');
  const known = path.join(sshDir, 'known_hosts');
  copyFileSync(o.key ?? ssh.key, key);
  chmodSync(key, 0o600);
  copyFileSync(o.knownHosts ?? ssh.knownHosts, known);
  const cfg = path.join(sb.dir, 'cfg', 'dsg.yml');
  writeFileSync(cfg, readFileSync(cfg, 'utf8') + `ssh:\n  key_path: ${key}\n  known_hosts: ${known}\n`);
  giveTo(as, sb.dir);
  return sb;
}

/** a hang guard for one dsg command, never a speed limit (a busy 2-core machine) */
const DEFAULT_TIMEOUT = 300_000;

/** Run the built binary synchronously. */
export function dsg(cwd: string, env: NodeJS.ProcessEnv, ...args: string[]): RunResult {
  return dsgAs(undefined, cwd, env, ...args);
}

/** Run the built binary synchronously as `as` (its uid/gid; undefined: the test's own user). */
export function dsgAs(as: RunAs | undefined, cwd: string, env: NodeJS.ProcessEnv, ...args: string[]): RunResult {
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [BIN, ...args], {
    cwd,
    env,
    encoding: 'utf8',
    timeout: DEFAULT_TIMEOUT,
    ...(as ? { uid: as.uid, gid: as.gid } : {}),
  });
  return { code: r.status ?? -1, signal: r.signal, stdout: r.stdout, stderr: r.stderr, ms: Date.now() - t0 };
}

/** Run the built binary without blocking the event loop (for running cases side by side); `o.as`: as that user. */
export function dsgAsync(
  cwd: string,
  env: NodeJS.ProcessEnv,
  args: string[],
  timeoutMs = DEFAULT_TIMEOUT,
  o: { as?: RunAs | undefined } = {},
): Promise<RunResult> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [BIN, ...args], {
      cwd,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(o.as ? { uid: o.as.uid, gid: o.as.gid } : {}),
    });
    let stdout = '';
    let stderr = '';
    c.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    c.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => c.kill('SIGTERM'), timeoutMs);
    c.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    c.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, signal, stdout, stderr, ms: Date.now() - t0 });
    });
  });
}

/** Throw with the command's output unless it exited 0. */
export function ok(r: RunResult, what = 'dsg'): RunResult {
  if (r.code !== 0)
    throw new Error(
      `${what}: exit ${r.code}${r.signal ? ` (${r.signal})` : ''}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`,
    );
  return r;
}

export function json<T = Record<string, unknown>>(r: RunResult): T {
  return JSON.parse(r.stdout) as T;
}

/** `.dsg/`, `conflicts.txt`: dsg's own files in a working tree, not user data. */
export const noMeta = (rel: string): boolean => rel === '.dsg' || rel.startsWith('.dsg/') || rel === 'conflicts.txt';

/** path → content (base64) of every file under dir; symlinks as `-> target`. */
export function listing(
  dir: string,
  skip: (rel: string) => boolean = () => false,
  opts: { dirs?: boolean } = {},
): Record<string, string> {
  const out: Record<string, string> = {};
  if (!existsSync(dir)) return out;
  const walk = (d: string): void => {
    for (const n of readdirSync(d).sort()) {
      const full = path.join(d, n);
      const rel = path.relative(dir, full);
      if (skip(rel)) continue;
      const st = lstatSync(full);
      if (st.isDirectory()) {
        if (opts.dirs) out[rel] = 'dir';
        walk(full);
      }
      // a link is its target text (never followed); a FIFO is never opened (it would block)
      else if (st.isSymbolicLink()) out[rel] = `-> ${readlinkSync(full)}`;
      else if (st.isFile()) out[rel] = readFileSync(full).toString('base64');
      else out[rel] = st.isFIFO() ? 'fifo' : 'special';
    }
  };
  walk(dir);
  return out;
}

/** A readable diff of two listings ('' when equal). */
export function diffListings(want: Record<string, string>, got: Record<string, string>): string {
  const lines: string[] = [];
  for (const k of [...new Set([...Object.keys(want), ...Object.keys(got)])].sort()) {
    if (!(k in got)) lines.push(`missing ${k}`);
    else if (!(k in want)) lines.push(`extra   ${k}`);
    else if (want[k] !== got[k]) lines.push(`differs ${k}`);
  }
  return lines.join('\n');
}

export function write(file: string, content: string | Buffer): void {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, content);
}

/** Where and how a repository lives; every backend gives the same view to the tests. */
export interface Backend {
  label: string;
  type: 'posix' | 'zfs';
  /**
   * `dsg init` options naming the repository (add `--repo-name`). `agent`
   * replaces the agent command on the server (ignored by the in-process local
   * transport); it is written into the working copy's own `.dsg/config.local.yml`
   * only: a clone names its agent itself (cloneArgs), never from the repository.
   */
  initArgs: (name: string, o?: { agent?: string[] }) => string[];
  /** `dsg clone` arguments for repository name; `agent` as in initArgs (a clone's connection is its own: it never takes the agent from the repository) */
  cloneArgs: (name: string, o?: { agent?: string[] }) => string[];
  /** user-config lines this backend needs (ssh key, known_hosts) */
  userYaml: string;
  /** the directory holding the repository's live (current) tree, or null if there is none */
  liveTree: (name: string) => string | null;
  /** the repository lock file */
  lockFile: (name: string) => string;
  /** snapshot ids the repository has on disk, in order (s1, s2, …) */
  snapshots: (name: string) => string[];
  /** anything on the repository side that is neither the live tree, a committed snapshot, parked content nor the lock: leftovers of a transaction */
  leftovers: (name: string) => string[];
  /** remove what the backend made (datasets, directories) */
  destroy: () => void;
}

/**
 * A posix repository's parked content (`<repo>/parked/`): verified uploads of an
 * interrupted sync, kept by design for the next one and expiring on their own —
 * never a transaction's leftover, and no part of what a refused sync must leave
 * unchanged.
 */
export const isParkedPath = (rel: string): boolean => rel === 'parked' || rel.startsWith('parked/');

/** A posix repository root on local disk, reached over the local (in-process) transport (`--host localhost`). */
export function posixLocalBackend(label = 'posix/local'): Backend & { root: string } {
  const root = mkdtempSync(path.join(os.tmpdir(), 'dsg-rel-repos-'));
  const repoDir = (name: string): string => path.join(root, name);
  return {
    label,
    type: 'posix',
    root,
    initArgs: () => ['--host', 'localhost', '--repo-type', 'posix', '--repo-path', root],
    cloneArgs: (name) => [`localhost:${root}/${name}`],
    userYaml: '',
    liveTree: (name) => (existsSync(path.join(repoDir(name), 'current')) ? path.join(repoDir(name), 'current') : null),
    lockFile: (name) => path.join(repoDir(name), 'lock'),
    snapshots: (name) => {
      const d = path.join(repoDir(name), 'snapshots');
      if (!existsSync(d)) return [];
      return readdirSync(d).filter(isSnapshotId).sort(compareSnapshotIds);
    },
    leftovers: (name) => {
      const d = repoDir(name);
      if (!existsSync(d)) return [];
      const out: string[] = [];
      for (const n of readdirSync(d)) {
        if (n === 'snapshots' || n === 'current' || n === 'lock' || isParkedPath(n)) continue;
        if (n === 'tx' && readdirSync(path.join(d, n)).length === 0) continue;
        out.push(n === 'tx' ? `tx/${readdirSync(path.join(d, n)).join(',')}` : n);
      }
      const snaps = path.join(d, 'snapshots');
      // a snapshot's tree `sN` and its record `sN.json`
      if (existsSync(snaps))
        for (const n of readdirSync(snaps))
          if (!isSnapshotId(n.endsWith('.json') ? n.slice(0, -'.json'.length) : n)) out.push(`snapshots/${n}`);
      return out;
    },
    destroy: () => rmSync(root, { recursive: true, force: true }),
  };
}

/**
 * A posix repository root on this machine, reached over the real sshd (the agent is its own process).
 * `login`: the SSH user (default the test sshd's); `owner`: who owns the root (a non-root login must).
 */
export function posixSshBackend(
  ssh: SshTestEnv,
  o: { agent?: string[]; label?: string; login?: string; owner?: Pick<RunAs, 'uid' | 'gid'> } = {},
): Backend & { root: string } {
  const local = posixLocalBackend(o.label ?? 'posix/ssh');
  if (o.owner) giveTo(o.owner, local.root);
  const agent = o.agent ?? [process.execPath, AGENT];
  const sshArgs = (a = agent): string[] => [
    '--port',
    String(ssh.port),
    '--ssh-user',
    o.login ?? ssh.user,
    ...a.flatMap((x) => ['--agent', x]),
  ];
  return {
    ...local,
    initArgs: (_name, io) => [
      '--host',
      ssh.host,
      '--repo-type',
      'posix',
      '--repo-path',
      local.root,
      ...sshArgs(io?.agent),
    ],
    cloneArgs: (name, io) => [`${ssh.host}:${local.root}/${name}`, '--repo-type', 'posix', ...sshArgs(io?.agent)],
    userYaml: `ssh:\n  key_path: ${ssh.key}\n  known_hosts: ${ssh.knownHosts}\n`,
  };
}

/**
 * A ZFS repository under a fresh parent dataset of the test pool, reached
 * over the real sshd. `agent` is the agent command on the server (default
 * `node <built agent>`).
 */
export function zfsSshBackend(
  zfs: ZfsTestEnv,
  ssh: SshTestEnv,
  o: { agent?: string[]; label?: string; parent?: TestParent } = {},
): Backend & { parent: TestParent } {
  const parent = o.parent ?? freshParent(zfs, 'rel');
  const agent = o.agent ?? [process.execPath, AGENT];
  const sshArgs = (a = agent): string[] => [
    '--port',
    String(ssh.port),
    '--ssh-user',
    ssh.user,
    ...a.flatMap((x) => ['--agent', x]),
  ];
  const mine = (name: string): string[] =>
    listAll(parent.dataset).filter(
      (n) =>
        n.startsWith(`${parent.dataset}/${name}@`) ||
        n.startsWith(`${parent.dataset}/${name}-`) ||
        n === `${parent.dataset}/${name}`,
    );
  return {
    label: o.label ?? 'zfs/ssh',
    type: 'zfs',
    parent,
    initArgs: (_name, io) => [
      '--host',
      ssh.host,
      '--repo-type',
      'zfs',
      '--pool',
      parent.dataset,
      '--repo-path',
      parent.mountpoint,
      ...sshArgs(io?.agent),
    ],
    cloneArgs: (name, io) => [
      `${ssh.host}:${parent.mountpoint}/${name}`,
      '--repo-type',
      'zfs',
      '--pool',
      parent.dataset,
      ...sshArgs(io?.agent),
    ],
    userYaml: `ssh:\n  key_path: ${ssh.key}\n  known_hosts: ${ssh.knownHosts}\n`,
    liveTree: (name) => (mine(name).includes(`${parent.dataset}/${name}`) ? path.join(parent.mountpoint, name) : null),
    lockFile: (name) => path.join(parent.mountpoint, `.${name}.dsg-lock`),
    snapshots: (name) => {
      const prefix = `${parent.dataset}/${name}@`;
      return mine(name)
        .filter((n) => n.startsWith(prefix))
        .map((n) => n.slice(prefix.length))
        .filter(isSnapshotId)
        .sort(compareSnapshotIds);
    },
    leftovers: (name) => {
      const live = `${parent.dataset}/${name}`;
      const isSnapshot = (n: string): boolean => n.startsWith(`${live}@`) && isSnapshotId(n.slice(live.length + 1));
      const out = mine(name).filter((n) => n !== live && !isSnapshot(n));
      // a live dataset still marked by a transaction is a leftover too
      if (mine(name).includes(live)) {
        const tx = listAll(live, ['name', 'dsg:tx'])
          .find((l) => l.startsWith(`${live}\t`))
          ?.split('\t')[1];
        if (tx && tx !== '-') out.push(`${live} dsg:tx=${tx}`);
      }
      return out;
    },
    destroy: () => parent.destroy(),
  };
}

/** Wait until `check()` is true (polling), or throw after timeoutMs naming what. */
export async function waitFor(what: string, check: () => boolean, timeoutMs = 120_000, everyMs = 100): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Run fns with at most `limit` at a time; results in order. */
export async function pool<T>(limit: number, fns: (() => Promise<T>)[]): Promise<T[]> {
  const out: T[] = new Array<T>(fns.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < fns.length) {
      const i = next++;
      out[i] = await fns[i]!();
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, fns.length) }, worker));
  return out;
}
