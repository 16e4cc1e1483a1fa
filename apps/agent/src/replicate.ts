import { hostname, userInfo } from 'node:os';
import { ConfigError, DsgError, sshArgv, type HasherFactory, type SerializedError } from '@dsg/contracts';
import { RepositoryLock, assertRepoName, shellCommand, type AgentTarget } from '@dsg/transports/server';
import { lockForReplication } from './replication-lock.js';
import { sshDestination, withSshMaster } from './ssh-master.js';
import {
  assertDatasetName,
  assertSyncoidArg,
  createZfsRunner,
  promoteReplica,
  replicateDataset,
  Zfs,
  zfsHost,
  type ReplicationReport,
  type SyncoidSsh,
  type ZfsHost,
  type ZfsRunner,
} from '@dsg/zfs-ops';
import { promotePosix, replicatePosix } from './replicate-posix.js';

/** Where `--to` points: `[user@]host:pool/parent` over ssh, or `pool/parent` on this machine. */
export interface ReplicaTarget {
  host?: string;
  user?: string;
  parent: string;
}

export function parseReplicaTarget(to: string): ReplicaTarget {
  const m = /^(?:(?:([^@:/]+)@)?([^@:/]+):)?(.+)$/.exec(to);
  if (!m || !to) throw new ConfigError(`--to ${JSON.stringify(to)} is not [user@]host:pool/parent`, { field: 'to' });
  const [, user, host, parent] = m;
  try {
    assertDatasetName(parent!);
    if (host !== undefined) assertSyncoidArg('target host', host);
    if (user !== undefined) assertSyncoidArg('target user', user);
  } catch (e) {
    throw new ConfigError(
      `--to ${JSON.stringify(to)}: ${(e as Error).message}`,
      { field: 'to' },
      {
        recoveryHint:
          'Give [user@]host:pool/parent (a replica host over ssh) or pool/parent (another pool here); the repositories are received as <parent>/<name>.',
      },
    );
  }
  return { ...(user !== undefined ? { user } : {}), ...(host !== undefined ? { host } : {}), parent: parent! };
}

/**
 * zfs on the replica host over ssh: the same argv as a local run, quoted
 * for the remote shell (sshd runs the command through it). A user other
 * than root runs `sudo -n zfs`, as syncoid does there.
 */
export function sshZfsRunner(target: ReplicaTarget, ssh: SyncoidSsh): ZfsRunner {
  const dest = sshDestination(target)!;
  return createZfsRunner({
    sudo: target.user !== 'root',
    wrap: (argv) => ['ssh', ...sshArgv(ssh), dest, shellCommand(argv)],
  });
}

export interface ReplicateOptions {
  target: AgentTarget;
  to: string;
  /** one repository; absent: every repository under the pool */
  repository?: string;
  ssh?: SyncoidSsh;
  /** the name this host goes by in the replicas' marker (default: its host name) */
  primaryName?: string;
  syncoid?: string;
  /** the rsync binary of `--type posix` (default `rsync` from PATH) */
  rsync?: string;
  log: (line: string) => void;
}

export interface RepositoryReplication extends ReplicationReport {
  repository: string;
  /** posix (rsync): the bytes rsync sent */
  bytesSent?: number;
}

/** A run over several repositories: each one replicated, or its error (the run goes on). */
export interface ReplicationRun {
  replicated: RepositoryReplication[];
  failed: { repository: string; error: SerializedError }[];
}

function zfsHostOf(target: AgentTarget, hasher: HasherFactory, log: (line: string) => void): ZfsHost {
  if (target.type !== 'zfs') {
    throw new DsgError('UNSUPPORTED', `replicate works on ZFS and posix repositories only (--type ${target.type})`, {
      recoveryHint: 'Replicate --type zfs or --type posix repositories; copy flat xfs ones with rsync by hand.',
    });
  }
  if (!target.pool) throw new ConfigError('--pool (the parent dataset) is required for --type zfs', { field: 'pool' });
  if (!target.mountpoint?.startsWith('/'))
    throw new ConfigError('--mountpoint must be an absolute path', { field: 'mountpoint' });
  return zfsHost({
    parent: target.pool,
    mountpoint: target.mountpoint,
    hasher,
    runner: createZfsRunner({ sudo: target.sudo ?? false }),
    log: (level, line) => log(`${level}: ${line}`),
  });
}

function holder(): { user: string; host: string; pid: number; since: string } {
  return {
    user: `replicate (${userInfo().username})`,
    host: hostname(),
    pid: process.pid,
    since: new Date().toISOString(),
  };
}

/**
 * Replicates the repositories of one ZFS pool to `--to`, each under its own
 * lock: a sync in progress makes it refuse that repository (LOCKED), and
 * recovery runs first, so a crashed transaction's temporaries are gone
 * before syncoid lists the snapshots. A repository that fails is reported
 * and the next one is tried; with `repository` given, its error is thrown.
 */
export async function replicate(o: ReplicateOptions, hasher: HasherFactory): Promise<ReplicationRun> {
  if (o.target.type === 'posix') return replicatePosix(o, hasher, holder);
  const host = zfsHostOf(o.target, hasher, o.log);
  const to = parseReplicaTarget(o.to);
  const ssh = o.ssh ?? {};
  const primaryName = o.primaryName ?? hostname();
  assertSyncoidArg('primary name', primaryName);
  const sourceZfs = new Zfs({ runner: createZfsRunner({ sudo: o.target.type === 'zfs' && (o.target.sudo ?? false) }) });
  const names = o.repository !== undefined ? [assertRepoName(o.repository)] : await host.list();
  if (o.repository !== undefined && !(await host.list()).includes(o.repository)) {
    throw new DsgError('NOT_FOUND', `no repository ${o.repository} under ${host.parent}`, {
      recoveryHint: `The repositories there: dsg-agent replicate without --repository replicates all of them.`,
    });
  }
  const dest = sshDestination(to);
  // the agent's own zfs calls on the replica share one ssh connection; syncoid keeps its own
  return withSshMaster(dest, ssh, async (shared) => {
    const targetZfs =
      to.host !== undefined
        ? new Zfs({ runner: sshZfsRunner(to, shared) })
        : new Zfs({ runner: createZfsRunner({ sudo: o.target.type === 'zfs' && (o.target.sudo ?? false) }) });
    const run: ReplicationRun = { replicated: [], failed: [] };
    for (const name of names) {
      try {
        run.replicated.push(await replicateOne(name, targetZfs));
      } catch (e) {
        // one repository named: its error is the command's; else the others still get their turn
        if (o.repository !== undefined || !(e instanceof DsgError)) throw e;
        o.log(`${name}: not replicated: ${e.message}`);
        run.failed.push({ repository: name, error: e.toJSON() });
      }
    }
    return run;
  });

  async function replicateOne(name: string, targetZfs: Zfs): Promise<RepositoryReplication> {
    const lock = new RepositoryLock(await host.lockFile(name));
    await lockForReplication(lock, name, holder());
    try {
      const rep = await host.open(name).recover();
      for (const t of rep.transactions) o.log(`${name}: recovery before replication: ${t.transactionId} ${t.action}`);
      const report = await replicateDataset({
        source: { zfs: sourceZfs, dataset: `${host.parent}/${name}` },
        target: {
          zfs: targetZfs,
          dataset: `${to.parent}/${name}`,
          ...(to.host !== undefined ? { host: to.host } : {}),
          ...(to.user !== undefined ? { user: to.user } : {}),
        },
        primary: `${primaryName}:${host.parent}/${name}`,
        ssh,
        ...(o.syncoid !== undefined ? { syncoid: o.syncoid } : {}),
        log: o.log,
      });
      return { repository: name, ...report };
    } finally {
      await lock.release();
    }
  }
}

/** `dsg-agent promote`: the replica of one repository becomes a primary (readonly off, marker removed). */
export async function promote(
  target: AgentTarget,
  repository: string,
  hasher: HasherFactory,
  log: (line: string) => void,
): Promise<{ repository: string; dataset: string; formerPrimary: string }> {
  if (target.type === 'posix') return promotePosix(target, repository, hasher, holder);
  const host = zfsHostOf(target, hasher, log);
  const name = assertRepoName(repository);
  const lock = new RepositoryLock(await host.lockFile(name));
  await lock.acquire(holder());
  try {
    const zfs = new Zfs({ runner: createZfsRunner({ sudo: target.type === 'zfs' && (target.sudo ?? false) }) });
    const dataset = `${host.parent}/${name}`;
    return { repository: name, dataset, formerPrimary: await promoteReplica(zfs, dataset) };
  } finally {
    await lock.release();
  }
}

/** The text report: one line per repository. */
export function replicationText(run: ReplicationRun): string {
  if (!run.replicated.length && !run.failed.length) return 'no repositories to replicate\n';
  const failed = run.failed.map((f) => `${f.repository}: not replicated: ${f.error.message}\n`).join('');
  return (
    run.replicated
      .map((r) => {
        const bytes =
          r.bytesSent !== undefined
            ? ` (${r.bytesSent} bytes)`
            : r.estimatedBytes !== null
              ? ` (~${r.estimatedBytes} bytes)`
              : '';
        if (r.head === null) return `${r.repository}: nothing committed yet, nothing sent\n`;
        if (!r.sent.length) return `${r.repository}: ${r.target} is up to date at ${r.head}\n`;
        return `${r.repository}: sent ${r.sent.length} snapshot${r.sent.length === 1 ? '' : 's'} (${r.sent.join(', ')})${bytes} to ${r.target}, now at ${r.head}\n`;
      })
      .join('') + failed
  );
}
