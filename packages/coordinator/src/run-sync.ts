import os from 'node:os';
import {
  assertSnapshotMessage,
  faultPoint,
  newTransactionId,
  NotFoundError,
  type ClientFilesystem,
  type ProgressListener,
  type RemoteRepository,
  type TransactionId,
  type Transport,
} from '@dsg/contracts';
import { applyClientOnly, applyInTransaction } from './apply.js';
import { InvalidNamesError, RemoteMovedError } from './errors.js';
import { defaultLogger, type TransactionLogger } from './logger.js';
import { planSync } from './plan.js';
import { hasTransfers, resolveOps, type Resolution } from './resolve.js';
import { emptyResult, type SyncResult } from './result.js';
import { checkIncomingConfig } from './shared-config.js';
import { DEFAULT_CONCURRENCY, errorMessage, type ProjectSpec, type SyncRun } from './sync-run.js';

export interface SyncOptions {
  project: ProjectSpec;
  clientFs: ClientFilesystem;
  remote: RemoteRepository;
  transport: Transport;
  message: string;
  dryRun?: boolean;
  resolutions?: Map<string, Resolution>;
  /** keep a local version that loses a resolution as `<name>~<ts>~` (default true; the CLI's `backup_on_conflict` setting) */
  backupOnConflict?: boolean;
  onProgress?: ProgressListener;
  /**
   * Called with the repository's `.dsgconfig.yml` before a sync would download
   * it over the local one; throw to refuse the sync (a config this client
   * cannot read would lock the working copy out of every later command).
   */
  validateProjectConfig?: (content: Buffer) => void | Promise<void>;
  /**
   * Whether two `.dsgconfig.yml`s mean the same to this client (same data
   * dirs and ignore rules; connection blocks never count). With no synced
   * copy to compare against (the original's working copies), two configs
   * that differ only in form are left alone instead of being a conflict.
   */
  sameConfig?: (local: Buffer, remote: Buffer) => boolean;
  /**
   * The caller's own check of the repository, run with the repository locked
   * and before the plan (a dry run: before the plan, unlocked): reads there
   * cannot race another client's commit. Throw to refuse the sync.
   */
  beforePlan?: () => Promise<void>;
  /** the head a plan shown to the user was made against; a different head under the lock → RemoteMovedError */
  expectedRemoteSnapshot?: string | null;
  concurrency?: number;
  logger?: TransactionLogger;
  transactionId?: TransactionId;
  now?: () => Date;
}

/**
 * One sync: lock the repository, re-plan under the lock, refuse on conflicts
 * (unless every conflict has a resolution), then either nothing; a
 * client-only apply when the repository needs no change (downloads, local
 * deletes, cache-only states: last-sync.json becomes R); or ONE
 * Transaction: transfers, deletes on both sides, the merged manifest with
 * its chain hash, sync-messages and archive on both sides, commit. Ends the
 * transport (the session is consumed) and releases the lock in every case.
 * init is this with a repository that does not exist yet (always → s1).
 */
export async function runSync(options: SyncOptions): Promise<SyncResult> {
  const { project, remote, transport } = options;
  const log = options.logger ?? defaultLogger;
  const now = options.now ?? ((): Date => new Date());
  const tx = options.transactionId ?? newTransactionId(now());
  let locked = false;
  const unlock = async (): Promise<void> => {
    if (!locked) return;
    locked = false;
    await remote.unlock().catch((e: unknown) => log.error(`could not release the repository lock: ${errorMessage(e)}`));
  };
  // The Transaction ends the transport; the lock must be released over it first.
  const session: Transport = {
    begin: () => transport.begin(),
    end: async () => {
      await unlock();
      await transport.end();
    },
  };
  const run: SyncRun = {
    command: 'sync',
    project,
    clientFs: options.clientFs,
    remote,
    transport: session,
    tx,
    concurrency: options.concurrency ?? DEFAULT_CONCURRENCY,
    logger: log,
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
  };
  try {
    assertSnapshotMessage(options.message); // up front: past the point of no return ZFS could not store it
    if (options.dryRun) {
      await options.beforePlan?.();
      const plan = await planSync(options);
      return emptyResult('dry-run', plan, null, plan.remoteSnapshotId);
    }
    await remote.lock({
      user: project.user,
      host: os.hostname(),
      pid: process.pid,
      since: now().toISOString(),
      transactionId: tx,
    });
    locked = true;
    await options.beforePlan?.();
    const plan = await planSync(options);
    faultPoint('sync.after-scan');
    if (options.expectedRemoteSnapshot !== undefined && options.expectedRemoteSnapshot !== plan.remoteSnapshotId) {
      throw new RemoteMovedError(options.expectedRemoteSnapshot, plan.remoteSnapshotId);
    }
    if (plan.invalid.length) throw new InvalidNamesError(plan.invalid);
    if (!plan.remoteExists && plan.cache.entries.size > 0) {
      throw new NotFoundError(`repository ${project.name} does not exist, but this project has synced with it before`, {
        recoveryHint:
          'Check the repository settings in .dsgconfig.yml; refusing to treat the missing repository as empty (that would delete your files).',
      });
    }
    const ops = resolveOps(plan, project.user, options.resolutions, options.backupOnConflict ?? true);
    await checkIncomingConfig(run, ops, options.validateProjectConfig);
    // init always makes s1, even of an empty project: the repository must come to exist
    if (plan.remoteExists && !hasTransfers(ops) && !ops.cacheChange)
      return emptyResult('nothing', plan, null, plan.remoteSnapshotId);
    if (plan.remoteExists && ops.uploads.length === 0 && ops.deleteRemote.length === 0) {
      // The repository already holds the merged state: a new snapshot would only repeat R.
      return await applyClientOnly(run, plan, ops, now());
    }
    return await applyInTransaction(run, plan, ops, now(), options.message);
  } finally {
    await session.end().catch((e: unknown) => log.error(`could not end the transport: ${errorMessage(e)}`));
  }
}
