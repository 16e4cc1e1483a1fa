import {
  LAST_SYNC,
  newTransactionId,
  type ClientFilesystem,
  type ProgressListener,
  type RemoteRepository,
  type TransactionId,
  type Transport,
} from '@dsg/contracts';
import { CONFIG_FILE } from '@dsg/manifest';
import { SyncConflictError } from './errors.js';
import { defaultLogger } from './logger.js';
import { planClone } from './plan.js';
import { stageClonedHistory } from './repository-metadata.js';
import type { Transfer } from './resolve.js';
import { emptyResult, type SyncResult } from './result.js';
import { configMoves, stageConfigBase } from './shared-config.js';
import { DEFAULT_CONCURRENCY, metaRel, type ProjectSpec, type SyncRun } from './sync-run.js';
import { progressCounter, stageClientChanges } from './transfers.js';

/**
 * Clone: the plan with C empty (local files equal to R are kept, so an
 * interrupted clone resumes by hash). Read-only on the server: no remote
 * transaction, no lock, no new snapshot — downloads go to staging and only
 * the client side commits. Ends the transport.
 */
export async function runClone(options: {
  project: ProjectSpec;
  clientFs: ClientFilesystem;
  remote: RemoteRepository;
  transport: Transport;
  onProgress?: ProgressListener;
  concurrency?: number;
  transactionId?: TransactionId;
}): Promise<SyncResult> {
  const { clientFs } = options;
  const tx = options.transactionId ?? newTransactionId();
  const run: SyncRun = {
    command: 'clone',
    project: options.project,
    clientFs,
    remote: options.remote,
    transport: options.transport,
    tx,
    concurrency: options.concurrency ?? DEFAULT_CONCURRENCY,
    logger: defaultLogger,
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
  };
  try {
    const plan = await planClone({ project: options.project, remote: options.remote });
    // a config of the clone's own that differs from the repository's is not a conflict yet: the first sync compares them
    const conflicts = plan.conflicts.filter((p) => p.path !== CONFIG_FILE);
    if (conflicts.length) throw new SyncConflictError(conflicts);
    // only R's files come down: a local file the repository lacks is kept, for the first sync to upload
    const downloads: Transfer[] = plan.paths
      .filter((p) => p.action === 'download')
      .map((p) => ({ path: p.path, entry: p.remote!, source: { from: 'remote' } }));
    const ops = { uploads: [], downloads, backups: [], deleteLocal: [] };
    const result = emptyResult('clone', plan, tx, plan.remoteSnapshotId);
    await clientFs.begin(tx);
    try {
      await stageClientChanges(run, plan, ops, new Date(), result, progressCounter(run, ops)); // no backups: the date names none
      await clientFs.stageMeta(tx, metaRel(LAST_SYNC), await plan.remoteManifestBytes!.read());
      await stageConfigBase(run, plan, configMoves(ops), 'clone');
      await stageClonedHistory(run, plan);
      await clientFs.setRemoteSnapshot(tx, plan.remoteSnapshotId!);
      await clientFs.commit(tx);
    } catch (e) {
      await clientFs.rollback(tx);
      throw e;
    }
    return result;
  } finally {
    await options.transport.end();
  }
}
