import { faultPoint, NotFoundError, type ByteStream, type ExpectedFile } from '@dsg/contracts';
import { conflictBackupName, type FileEntry, type ManifestEntry } from '@dsg/manifest';
import { forEachLimited } from './pool.js';
import type { Ops, Transfer } from './resolve.js';
import type { SyncResult } from './result.js';
import { counted } from './streams.js';
import type { SyncRun } from './sync-run.js';

/** What a transfer must arrive as; the project config has no mtime to apply (it is not a manifest entry). */
const expectedOf = (e: FileEntry): ExpectedFile => ({
  hash: e.hash,
  size: e.filesize,
  ...(e.mtime ? { mtime: e.mtime } : {}),
});

export async function openSource(run: SyncRun, transfer: Transfer): Promise<ByteStream> {
  const { clientFs, remote } = run;
  if (transfer.source.from === 'local') return clientFs.readFile(transfer.path);
  const s =
    transfer.source.from === 'remote'
      ? await remote.readFile(transfer.path)
      : await remote.readSnapshotFile(transfer.source.snapshotId, transfer.path);
  if (!s) {
    throw new NotFoundError(
      `${transfer.path} is missing from the repository${transfer.source.from === 'snapshot' ? ` snapshot ${transfer.source.snapshotId}` : ''}`,
      // a clone has no working copy to check yet: it is simply run again
      run.command === 'sync'
        ? { recoveryHint: 'The repository changed or is damaged; run `dsg status` and sync again.' }
        : {},
    );
  }
  return s;
}

type Emit = (phase: 'upload' | 'download' | 'delete' | 'commit', file?: { path: string; done: boolean }) => void;
export interface Progress {
  emit: Emit;
  count: (n: number) => void;
}

/** Progress events over one apply: files and bytes done of the transfers' totals. */
export function progressCounter(run: Pick<SyncRun, 'onProgress'>, ops: Pick<Ops, 'uploads' | 'downloads'>): Progress {
  const size = (e: ManifestEntry): number => (e.type === 'file' ? e.filesize : 0);
  const all = [...ops.uploads, ...ops.downloads];
  const totalFiles = all.length;
  const totalBytes = all.reduce((n, t) => n + size(t.entry), 0);
  let files = 0;
  let bytes = 0;
  return {
    count: (n) => void (bytes += n),
    emit: (phase, file) => {
      if (file?.done) files++;
      run.onProgress?.({ phase, files, totalFiles, bytes, totalBytes, ...(file ? { path: file.path } : {}) });
    },
  };
}

/** Uploads into the repository's work area (bounded concurrency), each verified there against its entry. */
export async function uploadAll(
  run: SyncRun,
  ops: Pick<Ops, 'uploads'>,
  result: SyncResult,
  pr: Progress,
): Promise<void> {
  const { remote, tx } = run;
  await forEachLimited(ops.uploads, run.concurrency, async (u) => {
    if (u.entry.type === 'link') await remote.writeLink(tx, u.path, u.entry.reference);
    else {
      const src = counted(await openSource(run, u), pr.count);
      await remote.writeFile(tx, u.path, src, expectedOf(u.entry));
      result.bytes.uploaded += u.entry.filesize;
    }
    result.uploaded.push(u.path);
    faultPoint('sync.after-upload'); // the first upload to finish reaches it
    pr.emit('upload', { path: u.path, done: true });
  });
}

/** Conflict-loser copies, downloads (bounded concurrency) and local deletes, all into the client's staging. */
export async function stageClientChanges(
  run: SyncRun,
  ops: Pick<Ops, 'backups' | 'downloads' | 'deleteLocal'>,
  at: Date,
  result: SyncResult,
  pr: Progress,
): Promise<void> {
  const { clientFs, tx } = run;
  for (const b of ops.backups) {
    const name = conflictBackupName(b.path, at);
    if (b.type === 'link') await clientFs.stageLink(tx, name, b.reference);
    else
      await clientFs.stageFile(tx, name, clientFs.readFile(b.path), { hash: b.hash, size: b.filesize, mtime: b.mtime });
    result.conflictBackups.push(name);
  }
  await forEachLimited(ops.downloads, run.concurrency, async (d) => {
    if (d.entry.type === 'link') await clientFs.stageLink(tx, d.path, d.entry.reference);
    else {
      const src = counted(await openSource(run, d), pr.count);
      await clientFs.stageFile(tx, d.path, src, expectedOf(d.entry));
      result.bytes.downloaded += d.entry.filesize;
    }
    result.downloaded.push(d.path);
    pr.emit('download', { path: d.path, done: true });
  });
  for (const p of ops.deleteLocal) {
    await clientFs.stageDelete(tx, p);
    result.deletedLocal.push(p);
    pr.emit('delete', { path: p, done: false });
  }
}
