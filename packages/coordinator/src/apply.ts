import path from 'node:path';
import { faultPoint, LAST_SYNC_MIRROR, writeFileAtomic } from '@dsg/contracts';
import { RemoteMovedError } from './errors.js';
import type { SyncPlan } from './plan.js';
import { headOf, stageRemoteMetadata, takeRemoteArchive, writeSnapshotMetadata } from './repository-metadata.js';
import { hasTransfers, type Ops } from './resolve.js';
import { emptyResult, type SyncResult } from './result.js';
import { configMoves, stageConfigBase, writeRootCopy } from './shared-config.js';
import type { SyncRun } from './sync-run.js';
import { Transaction } from './transaction.js';
import { progressCounter, stageClientChanges, uploadAll } from './transfers.js';

/**
 * The repository needs no change: apply downloads, local deletes and the
 * new cache (R exactly) on the client alone, still staged, journaled and
 * backed up by the ClientFilesystem. Cache-only plans are the case with no
 * file to move.
 */
export async function applyClientOnly(run: SyncRun, plan: SyncPlan, ops: Ops, at: Date): Promise<SyncResult> {
  const { clientFs, tx } = run;
  const result = emptyResult(hasTransfers(ops) ? 'local-only' : 'cache-only', plan, tx, plan.remoteSnapshotId);
  await clientFs.begin(tx);
  try {
    await stageClientChanges(run, plan, ops, at, result, progressCounter(run, ops));
    await stageConfigBase(run, plan, configMoves(ops), 'client');
    await stageRemoteMetadata(run, plan);
    if (plan.remoteSnapshotId) await clientFs.setRemoteSnapshot(tx, plan.remoteSnapshotId);
    await clientFs.commit(tx);
  } catch (e) {
    await clientFs.rollback(tx);
    throw e;
  }
  return result;
}

/**
 * ONE Transaction: uploads, the client's changes, the root config copy, the
 * repository's deletes, the new snapshot's metadata on both sides; the head
 * is re-checked under the lock, then both sides commit (or both roll back).
 */
export async function applyInTransaction(
  run: SyncRun,
  plan: SyncPlan,
  ops: Ops,
  at: Date,
  message: string,
): Promise<SyncResult> {
  const { project, clientFs, remote, tx } = run;
  const result = emptyResult('snapshot', plan, tx, null);
  const pr = progressCounter(run, ops);

  const t = new Transaction(tx, clientFs, remote, run.transport, { logger: run.logger });
  const archive = await takeRemoteArchive(plan);
  const mirror = await t.run(async () => {
    await uploadAll(run, plan, ops, result, pr);
    await stageClientChanges(run, plan, ops, at, result, pr);
    await writeRootCopy(run, plan, result);
    await stageConfigBase(run, plan, configMoves(ops), 'snapshot');
    faultPoint('sync.after-staging');
    for (const p of ops.deleteRemote) {
      await remote.deleteFile(tx, p);
      result.deletedRemote.push(p);
      pr.emit('delete', { path: p, done: false });
    }

    const written = await writeSnapshotMetadata(run, plan, ops.merged.values(), at, message, archive);
    const { snapshotId, metadata: md } = written;

    // Optimistic check under the lock: the head is still the one planned against.
    const head = await headOf(remote);
    if (head !== plan.remoteSnapshotId) throw new RemoteMovedError(plan.remoteSnapshotId, head);

    t.setSnapshot({
      snapshotId,
      message,
      manifestHash: md.snapshot_hash ?? '',
      user: project.user,
      createdAt: md.created_at,
    });
    await clientFs.setRemoteSnapshot(tx, snapshotId);
    faultPoint('sync.before-commit');
    pr.emit('commit');
    result.snapshotId = snapshotId;
    return written.mirror;
  });
  // The new last sync's mirror, now that it is this copy's: the next command decodes it instead of
  // parsing the JSON (100k entries: a status right after a sync peaked ~60 MB higher, parsing it and
  // encoding a mirror). A cache bound to the bytes by their digest: best effort, after the commit.
  const bin = mirror();
  if (bin) await writeFileAtomic(path.join(project.root, LAST_SYNC_MIRROR), bin).catch(() => undefined);
  return result;
}
