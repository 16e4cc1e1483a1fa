/**
 * Wiring: which Transport and backend a repository config means. The CLI is
 * the one place allowed to import implementations (docs/ARCHITECTURE.md §1).
 *   host absent or `localhost` → LocalTransport in-process, AgentServer over
 *     posixHost (PosixRemoteFilesystem, or FlatRemoteFilesystem: the original's xfs tree) / zfsHost
 *   any other host → SshTransport running `<agent> serve --type … …` there
 */
import { realpathSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { TransportError, ValidationError, type LockHolder, type RepositoryHost } from '@dsg/contracts';
import { createXxh3Hasher } from '@dsg/manifest';
import {
  AgentClient,
  AgentServer,
  LocalTransport,
  agentTargetArgv,
  openRemote,
  type AgentClientOptions,
  type AgentTarget,
  type ChannelTransport,
  type RepositoryProbes,
} from '@dsg/transports';
import { recoverClient } from '@dsg/client-fs';
import type { RepositoryConfig } from './config/project.js';
import { hostSettings, type UserConfig } from './config/user.js';
import type { Ctx } from './context.js';
import { agentIdleTimeoutMs, sshTransport } from './ssh.js';

export const DEFAULT_AGENT = ['dsg-agent'];

export type AnyTransport = ChannelTransport;

export interface Connection {
  client: AgentClient;
  transport: AnyTransport;
  /** e.g. `localhost:/srv/dsg/demo (posix)` for messages */
  where: string;
  close(): Promise<void>;
}

/**
 * The per-person keys the repository config leaves out (port, user, agent,
 * sudo), from the user config's `hosts:` entry for its host. The repository
 * config here is always the local one (.dsg/config.local.yml, or the clone
 * and init options): what it sets wins.
 */
export function withHostSettings(repo: RepositoryConfig, user: UserConfig | null): RepositoryConfig {
  const h = hostSettings(user, repo.host);
  if (!h) return repo;
  const out: RepositoryConfig = { ...repo };
  if (out.port === undefined && h.port !== undefined) out.port = h.port;
  if (out.user === undefined && h.user !== undefined) out.user = h.user;
  if (out.agent === undefined && h.agent !== undefined) out.agent = h.agent;
  if (out.type === 'zfs' && out.sudo === undefined && h.sudo !== undefined) out.sudo = h.sudo;
  return out;
}

export function isLocalHost(host: string | undefined): boolean {
  return host === undefined || host === 'localhost';
}

export function describeRepository(repo: RepositoryConfig, name: string): string {
  const host = repo.host ?? 'localhost';
  return repo.type === 'zfs'
    ? `${host}:${repo.pool}/${name} (zfs, mounted at ${repo.mountpoint}/${name})`
    : `${host}:${path.posix.join(repo.root, name)} (${repo.flat ? 'xfs' : 'posix'})`;
}

/**
 * The repositories a repository config names, on this machine: the CLI picks the host by type (RepositoryHost of @dsg/contracts owns the rest).
 * Each backend loads only when a repository of its type is opened here (the ZFS one brings its command runner).
 */
export async function localHost(repo: RepositoryConfig): Promise<RepositoryHost> {
  const hasher = createXxh3Hasher;
  if (repo.type === 'zfs') {
    const { createZfsRunner, zfsHost } = await import('@dsg/zfs-ops');
    return zfsHost({
      parent: repo.pool,
      mountpoint: repo.mountpoint,
      hasher,
      ...(repo.sudo ? { runner: createZfsRunner({ sudo: true }) } : {}),
    });
  }
  // the original's flat (xfs) repository when it is one on disk, or a new one of type xfs
  const { posixHost } = await import('@dsg/posix-ops');
  return posixHost({ root: repo.root, hasher, preferFlat: repo.flat === true });
}

/** The in-process agent for a repository on this machine. */
export async function localServer(repo: RepositoryConfig, log?: (s: string) => void): Promise<AgentServer> {
  return new AgentServer({
    host: await localHost(repo),
    hasher: createXxh3Hasher,
    ...(log ? { log } : {}),
    clientMountpoints: true, // this process is the user: snapmount --mountpoint is theirs to choose
    detect: { root: path.resolve(repo.type === 'zfs' ? repo.mountpoint : repo.root), probes: localProbes },
  });
}

/** detectRepository on this machine: the agent's checks (ZFS first, then dsg's posix layouts), each loaded on use. */
const localProbes: RepositoryProbes = {
  zfsDatasetAt: async (dir, { sudo }) => (await import('@dsg/zfs-ops')).datasetMountedAt(dir, { sudo }),
  posixLayoutAt: async (dir) => (await import('@dsg/posix-ops')).posixLayoutAt(dir),
};

/** Where a repository config's agent finds the repositories (a flat posix config is the agent's type xfs). */
export function agentTarget(repo: RepositoryConfig): AgentTarget {
  return repo.type === 'zfs'
    ? { type: 'zfs', pool: repo.pool, mountpoint: repo.mountpoint, sudo: repo.sudo === true }
    : { type: repo.flat ? 'xfs' : 'posix', root: repo.root };
}

/** The agent command line for a remote host: `<agent…> serve --type … …` (the flags are the agent's own table). */
export function agentArgv(repo: RepositoryConfig): string[] {
  return [...(repo.agent ?? DEFAULT_AGENT), 'serve', ...agentTargetArgv(agentTarget(repo))];
}

export async function makeTransport(ctx: Ctx, repo: RepositoryConfig, user: UserConfig | null): Promise<AnyTransport> {
  if (isLocalHost(repo.host)) {
    ctx.out.log(`transport: in-process agent (${repo.type})`);
    return new LocalTransport({
      mode: 'in-process',
      server: await localServer(repo, (l) => ctx.out.log(`agent: ${l}`)),
    });
  }
  const argv = agentArgv(repo);
  ctx.out.log(`transport: ssh ${repo.host ?? ''} → ${argv.join(' ')}`);
  return sshTransport(repo, user, argv);
}

/** A remote agent is watched for stalls (DSG_AGENT_TIMEOUT / ssh.agent_timeout); the in-process one is this process. */
function clientOptions(repo: RepositoryConfig, user: UserConfig | null): AgentClientOptions {
  return isLocalHost(repo.host) ? {} : { idleTimeoutMs: agentIdleTimeoutMs(user) };
}

/** `p` with its deepest existing ancestor resolved through symlinks (a repository may not exist yet). */
function realish(p: string): string {
  const rest: string[] = [];
  let d = path.resolve(p);
  for (;;) {
    try {
      return path.join(realpathSync(d), ...rest);
    } catch {
      const up = path.dirname(d);
      if (up === d) return path.resolve(p);
      rest.unshift(path.basename(d));
      d = up;
    }
  }
}

const within = (child: string, parent: string): boolean => child === parent || child.startsWith(parent + path.sep);

/**
 * A repository on this machine must not live inside the project's data
 * directories (every sync would snapshot the repository into itself) nor be
 * the project itself.
 */
export function refuseRepositoryInProject(
  repo: RepositoryConfig,
  name: string,
  project: { root: string; dataDirs: readonly string[] },
): void {
  if (!isLocalHost(repo.host)) return;
  const repoDir = realish(repo.type === 'zfs' ? path.join(repo.mountpoint, name) : path.join(repo.root, name));
  const root = realish(project.root);
  const inside = [root, ...project.dataDirs.map((d) => realish(path.join(project.root, d)))].find((d) =>
    d === root ? repoDir === root : within(repoDir, d),
  );
  if (inside !== undefined) {
    throw new ValidationError(
      `the repository ${repoDir} is ${inside === root ? 'the project itself' : `inside the data directory ${inside}`}: every sync would copy the repository into itself`,
      { path: repoDir },
      {
        code: 'REPOSITORY_IN_PROJECT',
        recoveryHint: 'Keep repositories outside the project (e.g. --repo-path /srv/dsg).',
      },
    );
  }
}

/** Connect and open repository `name` (it may not exist yet: init). `project`: refuse a local repository inside it. */
export async function connect(
  ctx: Ctx,
  given: RepositoryConfig,
  name: string,
  user: UserConfig | null,
  project?: { root: string; dataDirs: readonly string[] },
): Promise<Connection> {
  const repo = withHostSettings(given, user);
  if (project) refuseRepositoryInProject(repo, name, project);
  const transport = await makeTransport(ctx, repo, user);
  const client = await openRemote(transport, name, clientOptions(repo, user));
  return { client, transport, where: describeRepository(repo, name), close: () => transport.end() };
}

/** Connect without opening a repository (list-repos, reachability checks). */
export async function connectHost(ctx: Ctx, given: RepositoryConfig, user: UserConfig | null): Promise<Connection> {
  const repo = withHostSettings(given, user);
  const transport = await makeTransport(ctx, repo, user);
  await transport.begin();
  const client = new AgentClient(transport.channel(), clientOptions(repo, user));
  try {
    await client.handshake();
  } catch (e) {
    await transport.end().catch(() => {});
    throw e;
  }
  return { client, transport, where: repo.host ?? 'localhost', close: () => transport.end() };
}

export function lockHolder(user: UserConfig | null): LockHolder {
  return {
    user: user?.user_id ?? os.userInfo().username,
    host: os.hostname(),
    pid: process.pid,
    since: new Date().toISOString(),
  };
}

/** Every command that touches a project first finishes or undoes an interrupted client transaction. */
export async function recoverProject(ctx: Ctx, root: string, conn: Connection | null): Promise<void> {
  const report = await recoverClient(root, async (sid, hash) => {
    if (!conn) throw new TransportError('cannot check the repository for an interrupted transaction');
    const snaps = await conn.client.listSnapshots();
    // OUR sN, not one another client committed under the same id after this process died
    return snaps.some((s) => s.snapshotId === sid && (!hash || !s.manifestHash || s.manifestHash === hash));
  });
  reportRecovery(ctx, report);
}

/** What client recovery did and could not clean, as warnings (every command, online or not). */
export function reportRecovery(ctx: Ctx, report: Awaited<ReturnType<typeof recoverClient>>): void {
  for (const t of report.transactions)
    ctx.out.warn(`recovered interrupted transaction ${t.transactionId}: ${t.action}`);
  for (const l of report.leftovers) ctx.out.warn(`could not clean ${l.name}: ${l.error}`);
}
