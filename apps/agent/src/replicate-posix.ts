import { hostname } from 'node:os';
import path from 'node:path';
import { DsgError, type HasherFactory } from '@dsg/contracts';
import {
  parsePosixReplicaTarget,
  posixHost,
  promotePosixReplica,
  replicatePosixRepository,
  repositoryLayout,
  sshArgs,
  assertRsyncArg,
  type RsyncSsh,
} from '@dsg/posix-ops';
import { RepositoryLock, assertRepoName, shellCommand, type AgentTarget } from '@dsg/transports/server';
import { lockForReplication } from './replication-lock.js';
import { sshDestination, withSshMaster } from './ssh-master.js';
import type { ReplicateOptions, ReplicationRun, RepositoryReplication } from './replicate.js';

/**
 * `dsg-agent replicate --type posix`: the repositories under `--path`
 * copied with rsync (packages/posix-ops/src/replicate.ts), each under its
 * lock and after recovery, like the ZFS path: a repository that is locked
 * or fails is reported and the others go on; one named repository's error
 * is the command's.
 */
export async function replicatePosix(
  o: ReplicateOptions & { rsync?: string },
  hasher: HasherFactory,
  holder: () => { user: string; host: string; pid: number; since: string },
): Promise<ReplicationRun> {
  const host = hostOf(o.target, hasher);
  const to = parsePosixReplicaTarget(o.to);
  const given = o.ssh ?? {};
  const primaryName = o.primaryName ?? hostname();
  assertRsyncArg('primary name', primaryName);
  const dest = sshDestination(to);
  sshArgs(given); // refuse bad ssh settings before anything runs
  const all = await host.list();
  if (o.repository !== undefined && !all.includes(assertRepoName(o.repository))) {
    throw new DsgError('NOT_FOUND', `no repository ${o.repository} under ${host.root}`, {
      recoveryHint: 'dsg-agent replicate without --repository replicates all of them.',
    });
  }
  const names = o.repository !== undefined ? [o.repository] : all;
  // One ssh connection for the whole run: every probe, rename and rsync of it goes through one master.
  return withSshMaster(dest, given, async (ssh) => {
    // the remote commands: one argv, quoted for the remote shell sshd runs it through
    const remote = (argv: string[]): string[] => ['ssh', ...sshArgs(ssh), dest!, shellCommand(argv)];
    const run: ReplicationRun = { replicated: [], failed: [] };
    for (const name of names) {
      try {
        run.replicated.push(await one(name, ssh, remote));
      } catch (e) {
        if (o.repository !== undefined || !(e instanceof DsgError)) throw e;
        o.log(`${name}: not replicated: ${e.message}`);
        run.failed.push({ repository: name, error: e.toJSON() });
      }
    }
    return run;
  });

  async function one(
    name: string,
    ssh: RsyncSsh,
    remote: (argv: string[]) => string[],
  ): Promise<RepositoryReplication> {
    const root = path.join(host.root, name);
    if (repositoryLayout(root) === 'flat') {
      throw new DsgError('UNSUPPORTED', `${name} has the original's flat layout, which has no snapshots to replicate`, {
        recoveryHint: 'Migrate it to the snapshot layout first, or copy it with rsync by hand.',
      });
    }
    const lock = new RepositoryLock(host.lockFile(name));
    await lockForReplication(lock, name, holder());
    try {
      const rep = await host.open(name).recover();
      for (const t of rep.transactions) o.log(`${name}: recovery before replication: ${t.transactionId} ${t.action}`);
      const r = await replicatePosixRepository({
        source: root,
        target: to,
        primary: `${primaryName}:${root}`,
        ssh,
        ...(to.host !== undefined ? { remote } : {}),
        ...(o.rsync !== undefined ? { rsync: o.rsync } : {}),
        log: o.log,
      });
      return { repository: name, ...r, estimatedBytes: null };
    } finally {
      await lock.release();
    }
  }
}

function hostOf(target: AgentTarget, hasher: HasherFactory): ReturnType<typeof posixHost> {
  if (target.type !== 'posix') throw new DsgError('INTERNAL', `not a posix target: ${target.type}`);
  return posixHost({ root: target.root, hasher });
}

/** `dsg-agent promote --type posix`: the replica under `--path` becomes a primary (its marker removed). */
export async function promotePosix(
  target: AgentTarget,
  repository: string,
  hasher: HasherFactory,
  holder: () => { user: string; host: string; pid: number; since: string },
): Promise<{ repository: string; dataset: string; formerPrimary: string }> {
  const host = hostOf(target, hasher);
  const name = assertRepoName(repository);
  if (!(await host.list()).includes(name)) {
    throw new DsgError('NOT_FOUND', `no repository ${name} under ${host.root}`, {
      recoveryHint: 'Check --path and --repository (the replica is <path>/<name>).',
    });
  }
  const lock = new RepositoryLock(host.lockFile(name));
  await lock.acquire(holder());
  try {
    const root = path.join(host.root, name);
    return { repository: name, dataset: root, formerPrimary: await promotePosixReplica(root) };
  } finally {
    await lock.release();
  }
}
