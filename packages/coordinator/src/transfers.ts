import {
  DsgError,
  exactly,
  faultPoint,
  NotFoundError,
  Semaphore,
  StreamSplitter,
  TransportError,
  ValidationError,
  type ByteStream,
  type ExpectedFile,
} from '@dsg/contracts';
import { conflictBackupName, type FileEntry, type ManifestEntry } from '@dsg/manifest';
import { forEachLimited } from './pool.js';
import type { SyncPlan } from './plan.js';
import type { Ops, Transfer } from './resolve.js';
import { localSources, PACK_BYTES, packTransfers, routeUploads, type Reuse } from './routes.js';
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
  /** bytes of a transfer as they flow (read onto the wire, arrived) */
  count: (n: number, phase: 'upload' | 'download') => void;
  /**
   * bytes placed without the wire (a copy on the server, parked content, a
   * local copy): part of the bar, no part of a rate; negative takes back
   * what a reuse that failed half-way counted
   */
  reused: (n: number, phase: 'upload' | 'download') => void;
}

/** An event at least every this many bytes, so a bar moves within a large file (not only when one ends). */
export const PROGRESS_STEP_BYTES = 1 << 20;
/** …and at least this often while bytes flow, so a slow link moves it too. */
export const PROGRESS_STEP_MS = 100;

/** Progress events over one apply: files and bytes done of the transfers' totals. */
export function progressCounter(
  run: Pick<SyncRun, 'onProgress'>,
  ops: Pick<Ops, 'uploads' | 'downloads'>,
  now: () => number = Date.now,
): Progress {
  const size = (e: ManifestEntry): number => (e.type === 'file' ? e.filesize : 0);
  const all = [...ops.uploads, ...ops.downloads];
  const totalFiles = all.length;
  const totalBytes = all.reduce((n, t) => n + size(t.entry), 0);
  let files = 0;
  let bytes = 0;
  let reusedBytes = 0;
  let unreported = 0;
  let lastEmit = now();
  const send = (phase: Parameters<Emit>[0], path?: string): void => {
    unreported = 0;
    lastEmit = now();
    run.onProgress?.({
      phase,
      files,
      totalFiles,
      bytes,
      totalBytes,
      ...(reusedBytes ? { reusedBytes } : {}),
      ...(path === undefined ? {} : { path }),
    });
  };
  const add = (n: number, phase: 'upload' | 'download'): void => {
    bytes += n;
    unreported += Math.abs(n);
    if (unreported >= PROGRESS_STEP_BYTES || now() - lastEmit >= PROGRESS_STEP_MS) send(phase);
  };
  return {
    count: add,
    reused: (n, phase) => {
      reusedBytes += n;
      add(n, phase);
    },
    emit: (phase, file) => {
      if (file?.done) files++;
      send(phase, file?.path);
    },
  };
}

/** What a copy may answer that means "send it after all" (an agent without copyFile: UNKNOWN_OP). */
const COPY_REFUSED = new Set<string>(['NOT_FOUND', 'VALIDATION', 'HASH_MISMATCH', 'UNKNOWN_OP']);

/**
 * What the repository kept of an interrupted earlier sync (its parked content),
 * asked only when some file content is to be uploaded; an agent that predates
 * parking (UNKNOWN_OP) has none.
 */
async function parkedContent(run: SyncRun, ops: Pick<Ops, 'uploads'>): Promise<Set<string>> {
  if (!ops.uploads.some((u) => u.entry.type === 'file' && u.entry.filesize > 0)) return new Set();
  try {
    return new Set(await run.remote.parkedContent());
  } catch (e) {
    if (e instanceof DsgError && e.code === 'UNKNOWN_OP') return new Set();
    throw e;
  }
}

/**
 * Uploads into the repository's work area (bounded concurrency), each verified
 * there against its entry. Content the repository already holds is copied on
 * the server instead of sent (routeUploads): a rename sends no file content.
 */
export async function uploadAll(
  run: SyncRun,
  plan: Pick<SyncPlan, 'remote'>,
  ops: Pick<Ops, 'uploads'>,
  result: SyncResult,
  pr: Progress,
): Promise<void> {
  const { remote, tx } = run;
  const routes = routeUploads(ops.uploads, plan.remote, await parkedContent(run, ops));
  if (ops.uploads.length > 0) pr.emit('upload'); // the bar (and its clock) starts with the transfer, not its first MiB
  let copying = true;
  const done = (u: Transfer): void => {
    result.uploaded.push(u.path);
    pr.emit('upload', { path: u.path, done: true });
  };
  const send = async (u: Transfer): Promise<void> => {
    if (u.entry.type === 'link') await remote.writeLink(tx, u.path, u.entry.reference);
    else {
      const src = counted(await openSource(run, u), (n) => pr.count(n, 'upload'));
      await remote.writeFile(tx, u.path, src, expectedOf(u.entry));
      result.bytes.uploaded += u.entry.filesize;
    }
    faultPoint('sync.after-upload'); // the first upload to finish reaches it
    done(u);
  };
  /**
   * Content placed in the work area without the wire (a copy of what the
   * repository holds, parked content), verified there like an upload; a
   * refusal (damaged, expired, an agent without the op) sends it after all.
   */
  const reuse = async (u: Transfer, place: () => Promise<unknown>, what: string): Promise<void> => {
    const size = fileSize(u); // routeUploads reuses files only
    try {
      await place();
    } catch (e) {
      if (!(e instanceof DsgError) || !COPY_REFUSED.has(e.code)) throw e;
      if (e.code === 'UNKNOWN_OP') copying = false;
      run.logger.debug(`${what} refused on the server (${e.code}); sending it`);
      return send(u);
    }
    result.bytes.reused += size;
    pr.reused(size, 'upload');
    done(u);
  };
  const copy = ({ transfer: u, from }: Reuse): Promise<void> =>
    copying
      ? reuse(
          u,
          async () => {
            await remote.copyFile(tx, from, u.path, expectedOf(u.entry as FileEntry));
            faultPoint('sync.after-copy'); // the first copy on the server to finish reaches it
          },
          `copy of ${from} to ${u.path}`,
        )
      : send(u);
  const placeParked = (u: Transfer): Promise<void> =>
    reuse(u, () => remote.copyParked(tx, u.path, expectedOf(u.entry as FileEntry)), `parked content for ${u.path}`);
  // small files travel packed, many to a request; big ones and links alone
  const { packs, single } = packTransfers(routes.send);
  const sendPack = async (pack: Transfer[]): Promise<void> => {
    const files = pack.map((u) => ({
      path: u.path,
      expected: { ...expectedOf(u.entry as FileEntry), size: fileSize(u) },
    }));
    await remote.writeFiles(tx, files, packData(run, pack, pr));
    for (const u of pack) {
      result.bytes.uploaded += fileSize(u);
      done(u);
    }
    faultPoint('sync.after-upload');
  };
  await forEachLimited(routes.fromRepository, run.concurrency, copy);
  await forEachLimited(routes.fromParked, run.concurrency, placeParked);
  await forEachLimited(wireOrder(single, packs, send, sendPack), run.concurrency, (f) => f());
  await forEachLimited(routes.fromSent, run.concurrency, copy);
}

/**
 * Files bigger than a pack that may stream at once. Many files in flight hide
 * per-file round trips; a big file has none worth hiding (bandwidth bounds
 * it), and every file in flight when a sync is interrupted is sent again
 * whole: with at most two, a retry resends at most two partial files.
 */
export const BIG_IN_FLIGHT = 2;

/**
 * The order transfers start in, as thunks for one bounded pool: single
 * files up to a pack's size and the packs first (round trips, so many at
 * once), the big files last and at most BIG_IN_FLIGHT of them at a time.
 */
function wireOrder<P>(
  single: readonly Transfer[],
  packs: readonly P[],
  one: (t: Transfer) => Promise<void>,
  pack: (p: P) => Promise<void>,
): (() => Promise<void>)[] {
  const slots = new Semaphore(BIG_IN_FLIGHT);
  const big = single.filter((t) => fileSize(t) > PACK_BYTES);
  return [
    ...single.filter((t) => fileSize(t) <= PACK_BYTES).map((t) => () => one(t)),
    ...packs.map((p) => () => pack(p)),
    ...big.map((t) => () => slots.run(() => one(t))),
  ];
}

const fileSize = (u: Transfer): number => (u.entry.type === 'file' ? u.entry.filesize : 0);

/**
 * A pack's bytes: its files back to back, each exactly the size it was
 * scanned with — a file that changed since is refused here, before a byte of
 * the next one could be taken for its own.
 */
async function* packData(run: SyncRun, pack: readonly Transfer[], pr: Progress): ByteStream {
  for (const [i, u] of pack.entries()) {
    // a pack half sent: the agent holds its first files verified, the rest never arrives
    if (i === 1) faultPoint('sync.mid-pack');
    const changed = (why: string): Error =>
      new ValidationError(
        `${u.path} changed since it was scanned: ${why}`,
        { path: u.path, field: 'size' },
        { code: 'HASH_MISMATCH', recoveryHint: 'The file changed during the sync; run the sync again.' },
      );
    yield* exactly(
      counted(await openSource(run, u), (n) => pr.count(n, 'upload')),
      fileSize(u),
      changed,
    );
  }
}

const LOCAL_SOURCE_GONE = new Set(['HASH_MISMATCH', 'VALIDATION', 'ENOENT', 'ENOTDIR', 'EISDIR', 'EACCES', 'ELOOP']);

/**
 * A download staged without downloading: from a local file that holds the same
 * content (a file moved or copied in the repository), else from the client's
 * parked content (what an interrupted run already downloaded). True when done;
 * false when neither has it (or it no longer matches: changed since the scan,
 * gone), and the file is downloaded.
 */
async function stageReused(
  run: SyncRun,
  d: Transfer,
  from: string | undefined,
  result: SyncResult,
  pr: Progress,
): Promise<boolean> {
  if (d.entry.type !== 'file' || d.entry.filesize === 0) return false;
  let staged = false;
  if (from !== undefined) {
    // a local copy moves the bar as it is read; a copy that fails half-way takes its bytes back
    let copied = 0;
    try {
      const src = counted(run.clientFs.readFile(from), (n) => {
        copied += n;
        pr.reused(n, 'download');
      });
      await run.clientFs.stageFile(run.tx, d.path, src, expectedOf(d.entry));
      staged = true;
    } catch (e) {
      if (copied > 0) pr.reused(-copied, 'download');
      // the local copy is only a shortcut: anything wrong with it (not disk space) means download
      if (!LOCAL_SOURCE_GONE.has(String((e as { code?: unknown })?.code))) throw e;
    }
  }
  // what an interrupted earlier sync or clone already downloaded (client parked content)
  if (!staged) {
    staged = await run.clientFs.stageParked(run.tx, d.path, expectedOf(d.entry));
    if (staged) pr.reused(d.entry.filesize, 'download');
  }
  if (!staged) return false;
  result.bytes.reused += d.entry.filesize;
  return true;
}

/**
 * Conflict-loser copies, downloads (bounded concurrency; content already here
 * under another name is copied locally) and local deletes, all into the
 * client's staging.
 */
export async function stageClientChanges(
  run: SyncRun,
  plan: Pick<SyncPlan, 'local'>,
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
  if (ops.downloads.length > 0) pr.emit('download');
  const here = localSources(ops.downloads, plan.local);
  const downloaded = (d: Transfer): void => {
    result.downloaded.push(d.path);
    pr.emit('download', { path: d.path, done: true });
    faultPoint('sync.after-download'); // the first download to finish reaches it
  };
  // links, and content already here (a local copy, parked content), are staged without the wire
  const fetch: Transfer[] = [];
  await forEachLimited(ops.downloads, run.concurrency, async (d) => {
    if (d.entry.type === 'link') await clientFs.stageLink(tx, d.path, d.entry.reference);
    else if (!(await stageReused(run, d, here.get(d), result, pr))) return void fetch.push(d);
    downloaded(d);
  });
  const fetchOne = async (d: Transfer): Promise<void> => {
    const src = counted(await openSource(run, d), (n) => pr.count(n, 'download'));
    await clientFs.stageFile(tx, d.path, src, expectedOf(d.entry as FileEntry));
    result.bytes.downloaded += fileSize(d);
    downloaded(d);
  };
  // small files come packed, many to a request, each cut from the stream at its size and verified
  const fetchPack = async (pack: Transfer[]): Promise<void> => {
    const from = pack[0]!.source;
    const files = pack.map((d) => ({ path: d.path, size: fileSize(d) }));
    const split = new StreamSplitter(
      await run.remote.readFiles(files, from.from === 'snapshot' ? from.snapshotId : undefined),
      (why) => new TransportError(`a batched download broke off: ${why}`),
    );
    try {
      for (const d of pack) {
        const part = counted(split.next(fileSize(d), d.path), (n) => pr.count(n, 'download'));
        await clientFs.stageFile(tx, d.path, part, expectedOf(d.entry as FileEntry));
        result.bytes.downloaded += fileSize(d);
        downloaded(d);
      }
      await split.end();
    } catch (e) {
      await split.cancel().catch(() => {});
      throw e;
    }
  };
  const { packs, single } = packTransfers(fetch);
  await forEachLimited(wireOrder(single, packs, fetchOne, fetchPack), run.concurrency, (f) => f());
  for (const p of ops.deleteLocal) {
    await clientFs.stageDelete(tx, p);
    result.deletedLocal.push(p);
    pr.emit('delete', { path: p, done: false });
  }
}
