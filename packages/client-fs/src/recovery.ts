import { readFile, readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import {
  isTransactionId,
  LAST_SYNC,
  manifestMetadataOf,
  type CleanupReport,
  type RecoveryReport,
} from '@dsg/contracts';
import { backupDir, journalFile, layout, stagedMetaPath, stagingDir } from './layout.js';
import { applyJournal, listJournals, readJournal } from './journal.js';
import { finishApply, rollbackClientTx } from './client-filesystem.js';
import { isEnoent } from './fs-util.js';
import { transactionTime } from './backups.js';

const msg = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/**
 * Whether recovery has a transaction to finish or undo here (a journal):
 * until it has run, the working tree may be half applied. A command may
 * read the tree before recovery only when this is false.
 */
export async function hasInterruptedTransaction(root: string): Promise<boolean> {
  return (await listJournals(layout(path.resolve(root)))).length > 0;
}

/**
 * Run at the start of every command. For each journal: if its remote
 * snapshot exists (or it is a client-only apply), finish the apply;
 * otherwise undo it. Staging dirs without a journal never started to apply:
 * they are removed. `.dsg/parked/` is never touched: the verified downloads
 * there are what the next run resumes from (they expire at a begin). Never
 * throws; what it could not do is in `leftovers`.
 */
export async function recoverClient(
  root: string,
  remoteHasSnapshot: (snapshotId: string, manifestHash?: string) => Promise<boolean>,
): Promise<RecoveryReport> {
  const l = layout(path.resolve(root));
  const report: RecoveryReport = { removed: [], leftovers: [], transactions: [] };
  let journals: string[] = [];
  try {
    journals = await listJournals(l);
  } catch (e) {
    report.leftovers.push({ name: l.journalDir, error: msg(e) });
  }
  for (const tx of journals) {
    try {
      const j = await readJournal(l, tx);
      if (!j) continue;
      const hash = await stagedManifestHash(stagingDir(l, tx));
      const forward = j.remote_snapshot === null || (await remoteHasSnapshot(j.remote_snapshot, hash));
      if (forward) {
        await applyJournal(l, j);
        await finishApply(l, tx);
        report.transactions.push({ transactionId: tx, action: 'rolled-forward' });
      } else {
        const r = await rollbackClientTx(l, tx);
        report.removed.push(...r.removed);
        report.leftovers.push(...r.leftovers);
        report.transactions.push({ transactionId: tx, action: 'rolled-back' });
      }
    } catch (e) {
      report.leftovers.push({ name: journalFile(l, tx), error: msg(e) });
    }
  }
  let staged: string[] = [];
  try {
    staged = (await readdir(l.stagingRoot)).filter(isTransactionId);
  } catch (e) {
    if (!isEnoent(e)) report.leftovers.push({ name: l.stagingRoot, error: msg(e) });
  }
  for (const tx of staged) {
    if (journals.includes(tx)) continue;
    try {
      await rm(stagingDir(l, tx), { recursive: true, force: true });
      report.removed.push(stagingDir(l, tx));
      report.transactions.push({ transactionId: tx, action: 'cleaned' });
    } catch (e) {
      report.leftovers.push({ name: stagingDir(l, tx), error: msg(e) });
    }
  }
  return report;
}

/**
 * The snapshot_hash of the manifest this apply stages, while it is still in
 * staging: lets the caller tell OUR sN from an sN another client committed
 * after this process died before its own remote commit. (Once the staged
 * manifest has been moved into place the remote commit certainly happened.)
 */
async function stagedManifestHash(staging: string): Promise<string | undefined> {
  try {
    const raw = JSON.parse(await readFile(path.join(staging, stagedMetaPath(LAST_SYNC)), 'utf8')) as unknown;
    const h = manifestMetadataOf(raw)?.['snapshot_hash'];
    return typeof h === 'string' ? h : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Remove `.dsg/backup/<tx>/` directories older than maxAgeMs (age from the
 * transaction id; the directory's mtime for other names). A backup whose
 * transaction still has a journal is kept: recovery may need it.
 * `dsg clean --target backups` calls this.
 */
export async function pruneBackups(
  root: string,
  maxAgeMs: number,
  options: { now?: Date; dryRun?: boolean } = {},
): Promise<CleanupReport> {
  const l = layout(path.resolve(root));
  const now = (options.now ?? new Date()).getTime();
  const report: CleanupReport = { removed: [], leftovers: [] };
  let names: string[];
  try {
    names = await readdir(l.backupRoot);
  } catch (e) {
    if (!isEnoent(e)) report.leftovers.push({ name: l.backupRoot, error: msg(e) });
    return report;
  }
  const journals = new Set(await listJournals(l).catch(() => [] as string[]));
  for (const name of names.sort()) {
    const dir = backupDir(l, name);
    try {
      if (journals.has(name)) continue;
      const t = transactionTime(name) ?? (await stat(dir)).mtimeMs;
      if (now - t < maxAgeMs) continue;
      if (!options.dryRun) await rm(dir, { recursive: true, force: true });
      report.removed.push(dir);
    } catch (e) {
      report.leftovers.push({ name: dir, error: msg(e) });
    }
  }
  return report;
}
