import { constants, lstatSync } from 'node:fs';
import { lstat, mkdir, open, readdir, readFile, rename, rm, rmdir, symlink } from 'node:fs/promises';
import path from 'node:path';
import {
  chunksOf,
  assertLinkTargetOnDisk,
  assertSafeRelativePath,
  assertTransactionId,
  fsyncDir,
  tempNameBeside,
  writeFileAtomic,
  assertSafeLinkTarget,
  DsgError,
  faultPoint,
  isTransactionId,
  LAST_SYNC,
  manifestMetadataOf,
  snapshotRefOf,
  SYNC_MESSAGES,
  mkdirsBeneath,
  Mutex,
  NotFoundError,
  removeCreated,
  resolveBeneath,
  TransactionCommitError,
  ValidationError,
  type BeginResult,
  type ByteStream,
  type CleanupReport,
  type ExpectedFile,
  type HasherFactory,
  type RecoveryReport,
  type RemoteFilesystem,
  type SnapshotInfo,
  type SnapshotMounter,
  type SnapshotRef,
  type TransactionId,
  type TransactionPattern,
  streamVerified,
  EXPECTED_HASH_RE,
  contentMismatch,
  ParkedStore,
  type ParkedOptions,
  parkedName,
  parksUpload,
} from '@dsg/contracts';
import { errno, forceRemove, openCopySource, readFrom, StreamingUploads } from './fs-util.js';
import { DIR_MODE, FILE_MODE, refuseDirectory } from './work-area.js';
import { assertSnapshotId, CURRENT, snapshotNumber } from './layout.js';

/**
 * The original dsg's (HRDAG/dsg 0.4.4) xfs repository: `<base>/<name>/` IS
 * the current tree, with `.dsg/last-sync.json` (the head manifest) and
 * `.dsg/sync-messages.json` inside; no `current`, no `snapshots/`.
 *
 *   .dsg/last-sync.json     the head manifest: renamed into place LAST, the commit point
 *   .dsg/sync-messages.json snapshot metadata (the original's lags one behind)
 *   .dsg/archive/sN-…lz4    older manifests, written by dsg like the original's clients keep them
 *   .dsg/tx/<tx>/           work area of an open transaction (hidden: the original never reads it)
 *     new/<path>            staged new and changed files and links
 *     old/<path>            what the commit moved aside (replaced or deleted)
 *     journal.json          the renames of a commit, written before the first one
 *   .dsg/tx/parked/<hash>   verified uploads kept for the transaction after an interrupted one (parked.ts)
 *   ../.<name>.dsg-lock     the agent's lock file (beside the repository, like the ZFS one)
 */
// contracts' one layout, under the names this package exported
export const FLAT_LAST_SYNC = LAST_SYNC;
export const FLAT_SYNC_MESSAGES = SYNC_MESSAGES;
export const FLAT_TX = '.dsg/tx';
/** Never a transaction id (those are UUIDs), so recovery tells it from a work area. */
const PARKED_DIR = 'parked';
const JOURNAL = 'journal.json';

const ARCHIVE_RE = /^\.dsg\/archive\/[^/]+$/;

/**
 * Whether `root` is a flat repository on disk: `.dsg/last-sync.json` at its
 * top (a regular file, `.dsg` a real directory) and no `current` symlink.
 * Synchronous: the agent opens a repository per session from a plain callback.
 */
export function isFlatRepository(root: string): boolean {
  try {
    if (!lstatSync(root).isDirectory()) return false;
    if (!lstatSync(path.join(root, '.dsg')).isDirectory()) return false;
    if (!lstatSync(path.join(root, FLAT_LAST_SYNC)).isFile()) return false;
  } catch {
    return false;
  }
  try {
    // the snapshot layout's `current` is always a symlink; a file or directory of that name is data
    return !lstatSync(path.join(root, CURRENT)).isSymbolicLink();
  } catch {
    return true;
  }
}

/** Where the agent's lock of a flat repository lives: hidden, beside it (`<base>/.<name>.dsg-lock`). */
export function flatLockFile(root: string): string {
  return path.join(path.dirname(root), `.${path.basename(root)}.dsg-lock`);
}

interface Op {
  op: 'put' | 'delete';
  path: string;
}

interface Journal {
  version: 1;
  transactionId: string;
  snapshotId: string;
  /** head at begin (null: init) */
  base: string | null;
  /** in apply order; `.dsg/last-sync.json` is not in it (it is the commit point) */
  ops: Op[];
  /** directories the apply creates in the tree, outermost first (removed again by a rollback) */
  createdDirs: string[];
}

interface TxState {
  pattern: TransactionPattern;
  /** N of the head at begin, 0 for init */
  base: number;
  ops: Map<string, Op['op']>;
  /** hashes this transaction wrote or placed: no longer parked once it commits */
  written: Set<string>;
}

export interface FlatRemoteFilesystemOptions extends ParkedOptions {
  /** The repository directory `<base>/<name>` (created by the first begin). */
  root: string;
  hasher: HasherFactory;
}

/**
 * The RemoteFilesystem of `@dsg/contracts` on the original's flat xfs
 * repository. A transaction stages every new or changed file in its hidden
 * work area; commit writes a journal of the renames, moves what is replaced
 * or deleted aside, renames the staged files into place, and renames the new
 * `.dsg/last-sync.json` over the old one as the very last step: the commit
 * point. `recover()` rolls a commit that did not reach it back from the
 * journal (the caller never got a success), and finishes the cleanup of one
 * that did. No history is kept on disk besides the manifests the original's
 * clients keep too (`.dsg/archive/`): only the head's files can be read.
 */
export class FlatRemoteFilesystem implements RemoteFilesystem, SnapshotMounter {
  readonly root: string;
  readonly layout = 'flat' as const;
  private readonly hasher: HasherFactory;
  private readonly txs = new Map<string, TxState>();
  private readonly mutex = new Mutex();
  private readonly uploading = new StreamingUploads();
  private readonly parked: ParkedStore;

  constructor(options: FlatRemoteFilesystemOptions) {
    if (typeof options.root !== 'string' || !path.isAbsolute(options.root)) {
      throw new ValidationError(`repository root must be an absolute path: ${JSON.stringify(options.root)}`, {
        field: 'root',
      });
    }
    this.root = path.resolve(options.root);
    this.hasher = options.hasher;
    this.parked = new ParkedStore(path.join(this.txRoot, PARKED_DIR), options);
  }

  private get txRoot(): string {
    return path.join(this.root, FLAT_TX);
  }
  private work(tx: string): string {
    return path.join(this.txRoot, tx);
  }

  // ---------------------------------------------------------------- transaction

  begin(tx: TransactionId): Promise<BeginResult> {
    return this.mutex.run(() => this.beginNow(tx));
  }

  private async beginNow(tx: TransactionId): Promise<BeginResult> {
    assertTransactionId(tx);
    faultPoint('flat.begin.start');
    await this.refuseSnapshotLayout();
    const exists = await this.exists();
    const base = exists ? await this.headNumber() : 0;
    await mkdir(this.root, { recursive: true, mode: DIR_MODE });
    if (!(await lstat(this.root)).isDirectory()) throw corrupt(`${this.root} is not a directory`);
    await mkdirsBeneath(this.root, `${FLAT_TX}/x`, DIR_MODE);
    const work = this.work(tx);
    try {
      await mkdir(work, { mode: DIR_MODE });
    } catch (e) {
      if (errno(e) === 'EEXIST') {
        throw new ValidationError(
          `transaction ${tx} already has a work area`,
          { field: 'transactionId' },
          {
            code: 'TX_EXISTS',
            recoveryHint: 'Use a new transaction id, or roll this one back first.',
          },
        );
      }
      throw e;
    }
    await mkdir(path.join(work, 'new'), { mode: DIR_MODE });
    await mkdir(path.join(work, 'old'), { mode: DIR_MODE });
    faultPoint('flat.begin.after-mkdir');
    const pattern: TransactionPattern = exists ? 'sync' : 'init';
    this.txs.set(tx, { pattern, base, ops: new Map(), written: new Set() });
    await this.parked.prune();
    return { pattern, workPath: work };
  }

  commit(tx: TransactionId, snapshot: SnapshotInfo): Promise<void> {
    return this.mutex.run(() => this.commitNow(tx, snapshot));
  }

  private async commitNow(tx: TransactionId, snapshot: SnapshotInfo): Promise<void> {
    assertTransactionId(tx);
    const n = assertSnapshotId(snapshot.snapshotId);
    const state = this.txs.get(tx);
    const work = this.work(tx);
    if (!state) {
      // A repeated commit (its first reply lost on the wire): the work area is gone and the head is it.
      if (!(await isDir(work)) && (await this.exists()) && (await this.headNumber()) === n) return;
      throw new NotFoundError(`no open transaction ${tx} in ${this.root}`, {
        recoveryHint: 'Begin the transaction first (it may have been rolled back).',
      });
    }
    const streaming = this.uploading.count(tx);
    if (streaming > 0) {
      throw new TransactionCommitError(`${streaming} upload(s) of transaction ${tx} are still streaming`, tx, {
        recoveryHint: 'Wait for every writeFile of the transaction to finish before committing.',
      });
    }
    const cur = (await this.exists()) ? await this.headNumber() : 0;
    if (state.base !== cur) {
      throw new TransactionCommitError(
        `the head moved from s${state.base} to s${cur} since transaction ${tx} began`,
        tx,
        {
          recoveryHint: 'Another sync committed meanwhile; roll back and sync again.',
        },
      );
    }
    if (n !== cur + 1) {
      throw new TransactionCommitError(
        `snapshot ${snapshot.snapshotId} is not the next one (the head is ${cur ? `s${cur}` : 'none'})`,
        tx,
        {
          recoveryHint: 'Roll back and sync again; the repository moved on.',
        },
      );
    }
    if (state.ops.get(FLAT_LAST_SYNC) !== 'put') {
      throw new TransactionCommitError(
        `transaction ${tx} wrote no ${FLAT_LAST_SYNC}: a flat repository commits by replacing it`,
        tx,
        {
          recoveryHint: 'Write the new manifest as .dsg/last-sync.json before committing.',
        },
      );
    }
    const staged = await readManifestHead(path.join(work, 'new', FLAT_LAST_SYNC));
    if (staged !== snapshot.snapshotId) {
      throw new TransactionCommitError(
        `the staged ${FLAT_LAST_SYNC} is ${staged ?? 'not a manifest'}, not ${snapshot.snapshotId}`,
        tx,
        {
          recoveryHint: 'Roll back and sync again.',
        },
      );
    }
    let journal: Journal;
    try {
      journal = await this.plan(tx, state, snapshot.snapshotId);
    } catch (e) {
      if (e instanceof TransactionCommitError) throw e;
      throw new TransactionCommitError(
        `commit of ${tx} as ${snapshot.snapshotId} refused: ${(e as Error).message}`,
        tx,
        {
          cause: e,
          recoveryHint: e instanceof DsgError ? e.recoveryHint : 'Roll back and sync again.',
        },
      );
    }
    try {
      faultPoint('flat.commit.start');
      await writeFileAtomic(path.join(work, JOURNAL), JSON.stringify(journal), { mode: 0o644 });
      faultPoint('flat.commit.after-journal');
      const dirs = new Set<string>([path.join(this.root, '.dsg')]);
      for (const op of journal.ops) {
        const full = await resolveBeneath(this.root, op.path);
        dirs.add(path.dirname(full));
        if (await exists(full)) {
          await mkdirsBeneath(path.join(work, 'old'), op.path, DIR_MODE);
          await rename(full, await resolveBeneath(path.join(work, 'old'), op.path));
        }
        if (op.op === 'put') {
          await mkdirsBeneath(this.root, op.path, DIR_MODE);
          await rename(await resolveBeneath(path.join(work, 'new'), op.path), await resolveBeneath(this.root, op.path));
        }
        faultPoint('flat.commit.after-apply');
      }
      for (const d of dirs) await fsyncDir(d);
      faultPoint('flat.commit.before-switch');
      // The commit point: the new head manifest replaces the old one in one rename.
      await rename(path.join(work, 'new', FLAT_LAST_SYNC), path.join(this.root, FLAT_LAST_SYNC));
    } catch (e) {
      const report: CleanupReport = { removed: [], leftovers: [] };
      await this.undo(work, journal, report).catch(() => undefined);
      if (e instanceof DsgError && !(e instanceof ValidationError)) throw e;
      throw new TransactionCommitError(
        `commit of ${tx} as ${snapshot.snapshotId} failed: ${(e as Error).message}`,
        tx,
        { cause: e },
      );
    }
    this.txs.delete(tx);
    try {
      await fsyncDir(path.join(this.root, '.dsg'));
    } catch (e) {
      throw new TransactionCommitError(
        `${snapshot.snapshotId} committed but the directory could not be fsynced: ${(e as Error).message}`,
        tx,
        { cause: e },
      );
    }
    faultPoint('flat.commit.after-switch');
    await forceRemove(work).catch(() => undefined);
    // stored by the commit: no longer worth keeping
    await this.parked.drop(state.written);
    await rmdir(this.txRoot).catch(() => undefined);
  }

  /** The journal of a commit: every op checked against the tree first (no link parent, no directory in the way). */
  private async plan(tx: TransactionId, state: TxState, snapshotId: string): Promise<Journal> {
    const rank = (p: string): number => (p === FLAT_SYNC_MESSAGES || ARCHIVE_RE.test(p) ? 1 : 0);
    const ops = [...state.ops.entries()]
      .filter(([p]) => p !== FLAT_LAST_SYNC)
      .map(([p, op]) => ({ op, path: p }))
      .sort((a, b) => rank(a.path) - rank(b.path));
    const createdDirs: string[] = [];
    const seen = new Set<string>();
    for (const op of ops) {
      const full = await resolveBeneath(this.root, op.path);
      const st = await lstat(full).catch(() => null);
      if (st?.isDirectory()) {
        throw new TransactionCommitError(
          `refused to ${op.op === 'put' ? 'replace' : 'delete'} directory ${JSON.stringify(op.path)}`,
          tx,
          {
            recoveryHint: 'The repository has a directory where the manifest has a file; move it aside on the server.',
          },
        );
      }
      if (op.op !== 'put') continue;
      const parts = op.path.split('/');
      for (let i = 1; i < parts.length; i++) {
        const rel = parts.slice(0, i).join('/');
        if (seen.has(rel)) continue;
        seen.add(rel);
        if (!(await exists(path.join(this.root, rel)))) createdDirs.push(rel);
      }
    }
    return { version: 1, transactionId: tx, snapshotId, base: state.base ? `s${state.base}` : null, ops, createdDirs };
  }

  /**
   * Undo an apply that did not reach the commit point, newest op first. A put
   * whose staged file is gone was renamed into place: it goes back to staging;
   * whatever was moved aside comes back. Directories the apply created are
   * removed when empty again.
   */
  private async undo(work: string, journal: Journal, report: CleanupReport): Promise<void> {
    for (const op of [...journal.ops].reverse()) {
      try {
        const full = await resolveBeneath(this.root, op.path);
        const staged = path.join(work, 'new', op.path);
        const aside = path.join(work, 'old', op.path);
        if (op.op === 'put' && !(await exists(staged)) && (await exists(full))) {
          await mkdirsBeneath(path.join(work, 'new'), op.path, DIR_MODE);
          await rename(full, staged);
        }
        if (await exists(aside)) await rename(aside, full);
      } catch (e) {
        report.leftovers.push({ name: op.path, error: (e as Error).message });
      }
    }
    for (const rel of [...journal.createdDirs].reverse()) await rmdir(path.join(this.root, rel)).catch(() => undefined);
  }

  rollback(tx: TransactionId): Promise<CleanupReport> {
    return this.mutex.run(() => this.rollbackNow(tx));
  }

  private async rollbackNow(tx: TransactionId): Promise<CleanupReport> {
    const report: CleanupReport = { removed: [], leftovers: [] };
    if (!isTransactionId(tx)) {
      report.leftovers.push({ name: String(tx).slice(0, 100), error: 'not a transaction id' });
      return report;
    }
    this.txs.delete(tx);
    await this.discard(tx, report);
    await this.dropEmptyInit();
    return report;
  }

  /** Remove one work area; a commit interrupted before its commit point is undone from its journal first. */
  private async discard(tx: string, report: CleanupReport): Promise<'rolled-back' | 'rolled-forward' | null> {
    const work = this.work(tx);
    if (!(await isDir(work))) return null;
    let action: 'rolled-back' | 'rolled-forward' = 'rolled-back';
    const journal = await readJournal(path.join(work, JOURNAL));
    if (journal) {
      const switched =
        !(await exists(path.join(work, 'new', FLAT_LAST_SYNC))) &&
        (await readManifestHead(path.join(this.root, FLAT_LAST_SYNC))) === journal.snapshotId;
      if (switched) action = 'rolled-forward';
      else {
        const before = report.leftovers.length;
        await this.undo(work, journal, report);
        if (report.leftovers.length > before) return action; // keep the work area: it holds what could not be put back
      }
    }
    try {
      if (await forceRemove(work)) report.removed.push(`${FLAT_TX}/${tx}`);
    } catch (e) {
      report.leftovers.push({ name: `${FLAT_TX}/${tx}`, error: (e as Error).message });
    }
    await rmdir(this.txRoot).catch(() => undefined);
    return action;
  }

  /** An init that never committed leaves the empty directories begin made. */
  private async dropEmptyInit(): Promise<void> {
    if (await exists(path.join(this.root, FLAT_LAST_SYNC))) return;
    await rmdir(this.txRoot).catch(() => undefined);
    await rmdir(path.join(this.root, '.dsg')).catch(() => undefined);
    await rmdir(this.root).catch(() => undefined);
  }

  // ------------------------------------------------------------- work area writes

  async writeFile(tx: TransactionId, rel: string, data: ByteStream, expected: ExpectedFile): Promise<{ size: number }> {
    assertTransactionId(tx);
    checkRel(rel);
    const want = typeof expected?.hash === 'string' ? expected.hash.toLowerCase() : '';
    if (!EXPECTED_HASH_RE.test(want))
      throw new ValidationError(`expected hash for ${rel} is not hex`, { path: rel, field: 'hash' });
    const mtime = expected.mtime === undefined ? undefined : new Date(expected.mtime);
    if (mtime && Number.isNaN(mtime.getTime()))
      throw new ValidationError(`bad mtime for ${rel}`, { path: rel, field: 'mtime' });
    const { stage, full, tmp, created, fh } = await this.mutex.run(async () => {
      const { stage } = this.open(tx);
      await resolveBeneath(this.root, rel); // no link or file among its parents in the tree it will land in
      await refuseDirectory(path.join(this.root, rel), rel);
      const created = await mkdirsBeneath(stage, rel, DIR_MODE);
      try {
        const full = await resolveBeneath(stage, rel);
        const tmp = tempNameBeside(full);
        const fh = await open(
          tmp,
          constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
          FILE_MODE,
        );
        return { stage, full, tmp, created, fh };
      } catch (e) {
        await removeCreated(stage, created);
        throw e;
      }
    });
    this.uploading.start(tx);
    let size = 0;
    let streamed = false;
    try {
      try {
        size = await streamVerified(fh, rel, data, expected, this.hasher, { fsync: true });
      } finally {
        await fh.close();
      }
      streamed = true;
      await this.mutex.run(async () => {
        try {
          const { state } = this.open(tx);
          await resolveBeneath(stage, rel);
          await rename(tmp, full);
          state.ops.set(rel, 'put');
          // Parked at once (a second name of the same inode): a kill -9 of anything later leaves it parked.
          if (parksUpload(rel)) await this.parked.link(full, want);
          state.written.add(want);
        } catch (e) {
          await rm(tmp, { force: true }).catch(() => undefined);
          await removeCreated(stage, created);
          throw e;
        }
      });
    } catch (e) {
      if (!streamed) {
        await this.mutex.run(async () => {
          await rm(tmp, { force: true }).catch(() => undefined);
          await removeCreated(stage, created);
        });
      }
      throw e;
    } finally {
      this.uploading.end(tx);
    }
    return { size };
  }

  /**
   * The source as this transaction sees it: its staged file when it wrote
   * one, absent when it deleted it, else the live tree's file. Opened under
   * the Mutex (a deleteFile or a commit cannot move it between the choice
   * and the open), then written to `to` through writeFile: every check,
   * the verification and the cleanup of an upload. Counted as an upload
   * until the source is closed, so a commit waits for it.
   */
  async copyFile(tx: TransactionId, from: string, to: string, expected: ExpectedFile): Promise<{ size: number }> {
    assertTransactionId(tx);
    for (const rel of [from, to]) {
      assertSafeRelativePath(rel);
      checkRel(rel);
    }
    const fh = await this.mutex.run(async () => {
      const { state, stage } = this.open(tx);
      const op = state.ops.get(from);
      if (op === 'delete')
        throw new NotFoundError(`${JSON.stringify(from)} was deleted in transaction ${tx}: nothing to copy`);
      const source = await openCopySource(op === 'put' ? stage : this.root, from);
      this.uploading.start(tx);
      return source;
    });
    try {
      return await this.writeFile(tx, to, chunksOf(fh), expected);
    } finally {
      this.uploading.end(tx);
      await fh.close();
    }
  }

  async parkedContent(): Promise<string[]> {
    return this.parked.hashes();
  }

  /**
   * Parked content written to `to` through writeFile (every check and the
   * verification of an upload), like copyFile. Parked content that no
   * longer matches its hash is refused (HASH_MISMATCH) and removed.
   */
  async copyParked(tx: TransactionId, to: string, expected: ExpectedFile): Promise<{ size: number }> {
    assertTransactionId(tx);
    assertSafeRelativePath(to);
    checkRel(to);
    const hash = parkedName(expected?.hash);
    const fh = await this.mutex.run(async () => {
      this.open(tx);
      const source = await this.parked.open(hash);
      this.uploading.start(tx);
      return source;
    });
    try {
      return await this.writeFile(tx, to, chunksOf(fh), expected);
    } catch (e) {
      if (contentMismatch(e)) await this.parked.discard(hash, fh);
      throw e;
    } finally {
      this.uploading.end(tx);
      await fh.close();
    }
  }

  writeLink(tx: TransactionId, rel: string, target: string): Promise<void> {
    return this.mutex.run(async () => {
      checkRel(rel);
      if (rel === CURRENT) {
        // a `current` link is what marks the snapshot layout: it would make the repository unreadable as a flat one
        throw new ValidationError(
          `refused link ${JSON.stringify(rel)}: a link named current at the top would turn this flat repository into a broken snapshot repository`,
          { path: rel },
        );
      }
      const { state, stage } = this.open(tx);
      await resolveBeneath(this.root, rel);
      await refuseDirectory(path.join(this.root, rel), rel);
      assertSafeLinkTarget(rel, target);
      // the target is checked against the tree as it is and as this transaction stages it
      await assertLinkTargetOnDisk(this.root, rel, target);
      await assertLinkTargetOnDisk(stage, rel, target);
      const created = await mkdirsBeneath(stage, rel, DIR_MODE);
      const full = await resolveBeneath(stage, rel);
      const tmp = tempNameBeside(full);
      try {
        await symlink(target, tmp);
        await rename(tmp, full);
        state.ops.set(rel, 'put');
      } catch (e) {
        await rm(tmp, { force: true }).catch(() => undefined);
        await removeCreated(stage, created);
        throw e;
      }
    });
  }

  deleteFile(tx: TransactionId, rel: string): Promise<void> {
    return this.mutex.run(async () => {
      checkRel(rel);
      const { state, stage } = this.open(tx);
      const full = await resolveBeneath(this.root, rel);
      const st = await lstat(full).catch(() => null);
      if (st?.isDirectory())
        throw new ValidationError(`refused to delete ${JSON.stringify(rel)}: it is a directory`, { path: rel });
      // a file staged earlier in this transaction is dropped from staging
      const staged = await resolveBeneath(stage, rel).catch(() => null);
      if (staged) await rm(staged, { force: true }).catch(() => undefined);
      state.ops.set(rel, 'delete');
    });
  }

  // ------------------------------------------------------------------- reading

  /** `flat`: a client that writes a config for this repository writes the original's `{type: xfs}` form. */
  async repositoryLayout(): Promise<string | null> {
    return (await this.exists()) ? 'flat' : null;
  }

  async exists(): Promise<boolean> {
    if (await isLink(path.join(this.root, CURRENT))) return false;
    try {
      const full = await resolveBeneath(this.root, FLAT_LAST_SYNC);
      return (await lstat(full)).isFile();
    } catch {
      return false;
    }
  }

  async readFile(rel: string): Promise<ByteStream | null> {
    checkRead(rel);
    if (!(await this.exists())) return null;
    return readFrom(this.root, rel);
  }

  /**
   * The head (from `.dsg/last-sync.json`) and, before it, the snapshots
   * `.dsg/sync-messages.json` names (the original's lags one behind the head).
   */
  async listSnapshots(): Promise<SnapshotRef[]> {
    if (!(await this.exists())) return [];
    const head = await readJson(path.join(this.root, FLAT_LAST_SYNC));
    const md = manifestMetadataOf(head);
    const headN = md ? snapshotNumber(String(md['snapshot_id'])) : null;
    if (!md || headN === null) throw corrupt(`${FLAT_LAST_SYNC} has no metadata.snapshot_id of the form sN`);
    const out = new Map<number, SnapshotRef>();
    const messages = await readJson(path.join(this.root, FLAT_SYNC_MESSAGES)).catch(() => null);
    const snaps = isRecord(messages) && isRecord(messages['snapshots']) ? messages['snapshots'] : {};
    for (const [id, v] of Object.entries(snaps)) {
      const n = snapshotNumber(id);
      if (n !== null && n < headN && isRecord(v)) out.set(n, snapshotRefOf(id, v));
    }
    out.set(headN, snapshotRefOf(`s${headN}`, md));
    return [...out.entries()].sort((a, b) => a[0] - b[0]).map(([, r]) => r);
  }

  async readSnapshotFile(snapshotId: string, rel: string): Promise<ByteStream | null> {
    const n = assertSnapshotId(snapshotId);
    const head = (await this.exists()) ? await this.headNumber() : 0;
    if (n === head) return this.readFile(rel);
    throw notAvailable(snapshotId, head, this.root);
  }

  mountSnapshot(snapshotId: string): Promise<string> {
    const n = assertSnapshotId(snapshotId);
    return Promise.reject(notAvailable(`s${n}`, 0, this.root));
  }

  unmountSnapshot(at: string): Promise<void> {
    return Promise.reject(new NotFoundError(`no snapshot of ${this.root} is mounted at ${at}`));
  }

  // ------------------------------------------------------------------ recovery

  recover(): Promise<RecoveryReport> {
    return this.mutex.run(() => this.recoverNow());
  }

  private async recoverNow(): Promise<RecoveryReport> {
    const report: RecoveryReport = { removed: [], leftovers: [], transactions: [] };
    this.txs.clear();
    let names: string[];
    try {
      names = await readdir(this.txRoot);
    } catch (e) {
      if (errno(e) !== 'ENOENT' && errno(e) !== 'ENOTDIR')
        report.leftovers.push({ name: FLAT_TX, error: (e as Error).message });
      return report;
    }
    for (const name of names.sort()) {
      if (name === PARKED_DIR) continue; // not a work area: kept across recovery, expired ones pruned below
      if (!isTransactionId(name)) {
        try {
          await forceRemove(path.join(this.txRoot, name));
          report.removed.push(`${FLAT_TX}/${name}`);
        } catch (e) {
          report.leftovers.push({ name: `${FLAT_TX}/${name}`, error: (e as Error).message });
        }
        continue;
      }
      const action = await this.discard(name, report);
      if (action) report.transactions.push({ transactionId: name, action });
    }
    await this.parked.prune();
    await rmdir(this.txRoot).catch(() => undefined);
    await this.dropEmptyInit();
    return report;
  }

  // ------------------------------------------------------------------- helpers

  /** N of the head manifest's snapshot_id. */
  async headNumber(): Promise<number> {
    const id = await readManifestHead(path.join(this.root, FLAT_LAST_SYNC));
    const n = id === null ? null : snapshotNumber(id);
    if (n === null) throw corrupt(`${FLAT_LAST_SYNC} has no metadata.snapshot_id of the form sN`);
    return n;
  }

  private open(tx: TransactionId): { state: TxState; stage: string } {
    assertTransactionId(tx);
    const state = this.txs.get(tx);
    if (!state) {
      throw new NotFoundError(`no open transaction ${tx} in ${this.root}`, {
        recoveryHint: 'Begin the transaction first (it may have been rolled back).',
      });
    }
    return { state, stage: path.join(this.work(tx), 'new') };
  }

  private async refuseSnapshotLayout(): Promise<void> {
    if (await isLink(path.join(this.root, CURRENT))) {
      throw corrupt(`${this.root} has a current link: it is a snapshot repository, not a flat one`);
    }
  }
}

// ----------------------------------------------------------------------- module helpers

/** Inside `.dsg/` only the head manifest, sync-messages and archives are data of a transaction. */
function checkRel(rel: string): void {
  if (typeof rel !== 'string') throw new ValidationError('path must be a string', { field: 'path' });
  if (rel.split('/')[0] !== '.dsg') return;
  if (rel === FLAT_LAST_SYNC || rel === FLAT_SYNC_MESSAGES || ARCHIVE_RE.test(rel)) return;
  throw new ValidationError(`refused path ${JSON.stringify(rel.slice(0, 200))}: dsg's own state in a flat repository`, {
    path: rel.slice(0, 4096),
  });
}

function checkRead(rel: string): void {
  if (typeof rel === 'string' && (rel === FLAT_TX || rel.startsWith(`${FLAT_TX}/`))) {
    throw new ValidationError(`refused path ${JSON.stringify(rel.slice(0, 200))}: a transaction's work area`, {
      path: rel.slice(0, 4096),
    });
  }
}

function corrupt(why: string): DsgError {
  return new DsgError('CORRUPT', `repository layout damaged: ${why}`, {
    recoveryHint:
      'Inspect <repo>/.dsg/last-sync.json by hand: a flat (xfs) repository is the current tree with .dsg/ inside.',
  });
}

function notAvailable(snapshotId: string, head: number, root: string): DsgError {
  return new NotFoundError(
    `the files of snapshot ${snapshotId} are not available in a flat repository (${root} keeps only the current tree${head ? `, s${head}` : ''})`,
    {
      recoveryHint:
        'A flat (xfs) repository, as the original dsg made it, keeps no old files: only the head can be read. Its older manifests are in .dsg/archive/ (`dsg log`, `dsg blame` still work).',
    },
  );
}

async function exists(p: string): Promise<boolean> {
  try {
    await lstat(p);
    return true;
  } catch (e) {
    if (errno(e) === 'ENOENT' || errno(e) === 'ENOTDIR') return false;
    throw e;
  }
}

async function isLink(p: string): Promise<boolean> {
  try {
    return (await lstat(p)).isSymbolicLink();
  } catch {
    return false;
  }
}

async function isDir(p: string): Promise<boolean> {
  try {
    return (await lstat(p)).isDirectory();
  } catch {
    return false;
  }
}

const isRecord = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

async function readJson(file: string): Promise<unknown> {
  const fh = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    if (!(await fh.stat()).isFile()) throw corrupt(`${path.basename(file)} is not a file`);
    return JSON.parse(await fh.readFile('utf8')) as unknown;
  } finally {
    await fh.close();
  }
}

/** metadata.snapshot_id of a manifest file, or null when it is missing or unreadable. */
async function readManifestHead(file: string): Promise<string | null> {
  try {
    const id = manifestMetadataOf(await readJson(file))?.['snapshot_id'];
    return typeof id === 'string' ? id : null;
  } catch {
    return null;
  }
}

async function readJournal(file: string): Promise<Journal | null> {
  try {
    const v = JSON.parse(await readFile(file, 'utf8')) as unknown;
    if (!isRecord(v) || v['version'] !== 1 || !Array.isArray(v['ops']) || !Array.isArray(v['createdDirs'])) return null;
    return v as unknown as Journal;
  } catch {
    return null;
  }
}
