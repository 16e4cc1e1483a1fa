import { lstat, mkdir, mkdtemp, readFile, readdir, readlink, rm, unlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { LocalClientFilesystem, recoverClient } from '@dsg/client-fs';
import type { ClientFilesystem, ProgressListener, RecoveryReport } from '@dsg/contracts';
import { createXxh3Hasher, parseManifest, type Manifest } from '@dsg/manifest';
import { posixHost } from '@dsg/posix-ops';
import { freshParent, zfsEnv, type TestParent } from '@dsg/testenv';
import { zfsHost } from '@dsg/zfs-ops';
import { AgentServer, LocalTransport, openRemote, type AgentClient } from '@dsg/transports';
import {
  planSync,
  runClone,
  runSync,
  type ProjectSpec,
  type Resolution,
  type SyncPlan,
  type SyncResult,
  type TransactionLogger,
} from '../../src/index.js';

export const REPO = 'proj';

/**
 * Wraps a component so that calling any of the named methods throws (a failure
 * injected at a named step): `<label>.<method>` fails every call, `<label>.<method>#N`
 * only the N-th (1-based) call through this wrapper.
 */
export function failing<T extends object>(target: T, steps: ReadonlySet<string>, label: string): T {
  const calls = new Map<string, number>();
  return new Proxy(target, {
    get(t, prop, recv) {
      const v = Reflect.get(t, prop, recv) as unknown;
      if (typeof v !== 'function') return v;
      const name = String(prop);
      return (...args: unknown[]) => {
        const n = (calls.get(name) ?? 0) + 1;
        calls.set(name, n);
        if (steps.has(`${label}.${name}`) || steps.has(`${label}.${name}#${n}`))
          return Promise.reject(new Error(`injected failure at ${label}.${name} (call ${n})`));
        return (v as (...a: unknown[]) => unknown).apply(t, args);
      };
    },
  });
}

export interface Client {
  name: string;
  user: string;
  root: string;
  project: ProjectSpec;
}

/**
 * Three parties on the real disk: one posix repository served by a real
 * AgentServer through the in-process LocalTransport, and any number of
 * client working trees using the real LocalClientFilesystem.
 */
export type Backend = 'posix' | 'zfs';

/** ZFS runs for real when the test pool is up; under DSG_REQUIRE_REAL=1 a missing pool fails instead of skipping. */
export const BACKENDS: Backend[] = zfsEnv() || process.env['DSG_REQUIRE_REAL'] === '1' ? ['posix', 'zfs'] : ['posix'];
if (!BACKENDS.includes('zfs'))
  console.warn('[coordinator e2e] ZFS test pool not available: ZFS end-to-end tests skipped');

export class World {
  readonly base: string;
  /** posix: the repositories' root dir; zfs: where the parent dataset is mounted */
  readonly repoRoot: string;
  /** the live tree of the repository's current snapshot */
  readonly currentDir: string;
  readonly backend: Backend;
  readonly parent: TestParent | null;
  failRemote = new Set<string>();
  logs: { level: string; m: string }[] = [];
  /** the agent's own log lines (its session counters among them) */
  agentLog: string[] = [];
  /** wraps the backend the agent serves (to watch what reaches it) */
  wrapBackend: (<T extends object>(fs: T) => T) | null = null;
  readonly server: AgentServer;

  private constructor(base: string, backend: Backend, parent: TestParent | null) {
    this.base = base;
    this.backend = backend;
    this.parent = parent;
    this.repoRoot = parent ? parent.mountpoint : path.join(base, 'repos');
    this.currentDir = parent ? path.join(parent.mountpoint, REPO) : path.join(this.repoRoot, REPO, 'current');
    // the agent's own hosts (backend, lock file, listing), with failures injectable at the backend
    const host = parent
      ? zfsHost({ parent: parent.dataset, mountpoint: parent.mountpoint, hasher: createXxh3Hasher })
      : posixHost({ root: this.repoRoot, hasher: createXxh3Hasher });
    this.server = new AgentServer({
      host: {
        open: (name) => {
          const fs = failing(host.open(name), this.failRemote, 'remote');
          return this.wrapBackend ? this.wrapBackend(fs) : fs;
        },
        lockFile: (name) => host.lockFile(name),
        list: () => host.list(),
      },
      hasher: createXxh3Hasher,
      log: (line) => this.agentLog.push(line),
    });
  }

  static async create(backend: Backend = 'posix'): Promise<World> {
    const base = await mkdtemp(path.join(os.tmpdir(), 'dsg-e2e-'));
    if (backend === 'zfs') {
      const env = zfsEnv();
      if (!env) throw new Error('no ZFS test pool (tooling/testenv)');
      return new World(base, backend, freshParent(env, 'coord'));
    }
    await mkdir(path.join(base, 'repos'));
    return new World(base, backend, null);
  }

  async dispose(): Promise<void> {
    this.parent?.destroy();
    await rm(this.base, { recursive: true, force: true });
  }

  readonly logger: TransactionLogger = {
    debug: () => undefined,
    info: () => undefined,
    warn: (m) => this.logs.push({ level: 'warn', m }),
    error: (m) => this.logs.push({ level: 'error', m }),
    critical: (m) => this.logs.push({ level: 'critical', m }),
  };

  async client(name: string, files: Record<string, string> = {}): Promise<Client> {
    const root = path.join(this.base, name);
    await mkdir(root);
    const c: Client = {
      name,
      user: `${name}@example.org`,
      root,
      project: {
        root,
        name: REPO,
        dataDirs: ['input', 'output'],
        ignore: { names: ['.DS_Store'], suffixes: ['.tmp'], paths: [] },
        user: `${name}@example.org`,
        timeZone: 'UTC',
        projectConfig: { name: REPO },
      },
    };
    for (const [p, content] of Object.entries(files)) await put(c, p, content);
    return c;
  }

  async session(): Promise<{ transport: LocalTransport; remote: AgentClient }> {
    const transport = new LocalTransport({ mode: 'in-process', server: this.server });
    const remote = await openRemote(transport, REPO);
    return { transport, remote };
  }

  clientFs(c: Client, failAt = new Set<string>()): ClientFilesystem {
    return failing(
      new LocalClientFilesystem({ root: c.root, hasher: createXxh3Hasher }) as ClientFilesystem,
      failAt,
      'client',
    );
  }

  /** What every command does first. */
  async recover(c: Client): Promise<RecoveryReport> {
    const { transport, remote } = await this.session();
    try {
      const snaps = (await remote.exists()) ? await remote.listSnapshots() : [];
      return await recoverClient(c.root, (id, hash) =>
        Promise.resolve(
          snaps.some((s) => s.snapshotId === id && (!hash || !s.manifestHash || s.manifestHash === hash)),
        ),
      );
    } finally {
      await transport.end();
    }
  }

  async sync(
    c: Client,
    message = `sync by ${c.name}`,
    o: {
      resolutions?: Map<string, Resolution>;
      backupOnConflict?: boolean;
      failClient?: Set<string>;
      now?: () => Date;
      onProgress?: ProgressListener;
    } = {},
  ): Promise<SyncResult> {
    await this.recover(c);
    const { transport, remote } = await this.session();
    return runSync({
      project: c.project,
      clientFs: this.clientFs(c, o.failClient),
      remote,
      transport,
      message,
      logger: this.logger,
      ...(o.resolutions ? { resolutions: o.resolutions } : {}),
      ...(o.backupOnConflict !== undefined ? { backupOnConflict: o.backupOnConflict } : {}),
      ...(o.now ? { now: o.now } : {}),
      ...(o.onProgress ? { onProgress: o.onProgress } : {}),
    });
  }

  async clone(c: Client, o: { failClient?: Set<string> } = {}): Promise<SyncResult> {
    const { transport, remote } = await this.session();
    return runClone({ project: c.project, clientFs: this.clientFs(c, o.failClient), remote, transport });
  }

  async plan(c: Client): Promise<SyncPlan> {
    const { transport, remote } = await this.session();
    try {
      return await planSync({ project: c.project, remote });
    } finally {
      await transport.end();
    }
  }

  /** The repository's current manifest (null before init). */
  async remoteManifest(): Promise<Manifest | null> {
    try {
      return parseManifest(await readFile(path.join(this.currentDir, '.dsg/last-sync.json')), 'repo');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
  }

  /** The repository's current data files (without .dsg), path → content. */
  async remoteTree(): Promise<Record<string, string>> {
    return tree(this.currentDir);
  }

  async head(): Promise<string | null> {
    return (await this.remoteManifest())?.metadata?.snapshot_id ?? null;
  }
}

export async function put(c: Client, p: string, content: string): Promise<void> {
  const full = path.join(c.root, p);
  await mkdir(path.dirname(full), { recursive: true });
  await writeFile(full, content);
}

export async function del(c: Client, p: string): Promise<void> {
  await unlink(path.join(c.root, p));
}

export async function read(c: Client, p: string): Promise<string | null> {
  try {
    return await readFile(path.join(c.root, p), 'utf8');
  } catch {
    return null;
  }
}

/** Every file or link under dir, skipping .dsg: path → content or `-> target`. */
export async function tree(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  async function walk(d: string, rel: string): Promise<void> {
    let names: string[];
    try {
      names = await readdir(d);
    } catch {
      return;
    }
    for (const name of names.sort()) {
      if (!rel && name === '.dsg') continue;
      const r = rel ? `${rel}/${name}` : name;
      const full = path.join(d, name);
      const st = await lstat(full);
      if (st.isDirectory()) await walk(full, r);
      else if (st.isSymbolicLink()) out[r] = `-> ${await readlink(full)}`;
      else out[r] = await readFile(full, 'utf8');
    }
  }
  await walk(dir, '');
  return out;
}

export async function backupsOf(c: Client): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const dir = path.join(c.root, '.dsg/backup');
  let txs: string[] = [];
  try {
    txs = await readdir(dir);
  } catch {
    return out;
  }
  for (const tx of txs) for (const [p, v] of Object.entries(await tree(path.join(dir, tx)))) out[`${tx}/${p}`] = v;
  return out;
}

export async function leftovers(c: Client): Promise<string[]> {
  const out: string[] = [];
  for (const d of ['staging', 'journal']) {
    try {
      for (const n of await readdir(path.join(c.root, '.dsg', d))) out.push(`${d}/${n}`);
    } catch {
      /* absent */
    }
  }
  return out;
}
