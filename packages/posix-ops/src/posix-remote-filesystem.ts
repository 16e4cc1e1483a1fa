import { constants } from 'node:fs';
import {
  chmod,
  lstat,
  mkdir,
  open,
  readdir,
  readFile,
  readlink,
  rename,
  rm,
  rmdir,
  stat,
  symlink,
  unlink,
} from 'node:fs/promises';
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
  ProvenDirs,
} from '@dsg/contracts';
import { cloneTree, type CloneOptions } from './clone-tree.js';
import { DIR_MODE, FILE_MODE, refuseDirectory } from './work-area.js';
import { errno, forceRemove, openCopySource, readFrom, StreamingUploads } from './fs-util.js';
import { assertSnapshotId, Layout, snapshotNumber, TEMP_LINK_PREFIX } from './layout.js';
import { sealDir, sealTree } from './seal.js';
import { posixReplicaError, replicaOf } from './replicate.js';

export interface PosixRemoteFilesystemOptions extends ParkedOptions {
  /** The repository directory `<base>/<name>` (created by the first begin). */
  root: string;
  /** Streaming hash used to verify every written file (xxh3-64 in dsg). */
  hasher: HasherFactory;
  /** Test hook: replaces link() when building work areas, to exercise the copy fallback. */
  linkFile?: CloneOptions['linkFile'];
}

/** What `snapshots/sN.json` holds. */
export interface SnapshotMetadata extends SnapshotInfo {
  transactionId: string;
}

interface TxState {
  pattern: TransactionPattern;
  /** N of the snapshot the work area was cloned from, 0 for init */
  base: number;
  /** hashes this transaction wrote or placed: no longer parked once it commits */
  written: Set<string>;
}

/**
 * The transactional RemoteFilesystem on any POSIX filesystem. Snapshots are
 * full directory trees sharing unchanged files by hard link; the commit
 * point is one rename of a new `current` symlink over the old. See README.md
 * for the layout and its guarantees.
 *
 * Not safe for two transactions at once on one repository: the agent's lock
 * (`<root>/lock`) serialises them, and recover() must only run under it.
 */
export class PosixRemoteFilesystem implements RemoteFilesystem, SnapshotMounter {
  readonly root: string;
  private readonly layout: Layout;
  private readonly hasher: HasherFactory;
  private readonly linkFile: CloneOptions['linkFile'];
  private readonly txs = new Map<string, TxState>();
  /** Every work-area mutation runs in here, one at a time (see Mutex of @dsg/contracts). */
  private readonly mutex = new Mutex();
  /** Parents the shared path steps proved real directories (valid until an exclusive holder runs: see ProvenDirs). */
  private readonly proven = new ProvenDirs(this.mutex);
  /** Uploads of a transaction whose data is still streaming (commit refuses while there are any). */
  private readonly uploading = new StreamingUploads();
  /** `<root>/parked/`: verified uploads kept for the transaction after an interrupted one (see parked.ts) */
  private readonly parked: ParkedStore;

  constructor(options: PosixRemoteFilesystemOptions) {
    if (typeof options.root !== 'string' || !path.isAbsolute(options.root)) {
      throw new ValidationError(`repository root must be an absolute path: ${JSON.stringify(options.root)}`, {
        field: 'root',
      });
    }
    this.root = path.resolve(options.root);
    this.layout = new Layout(this.root);
    this.hasher = options.hasher;
    this.linkFile = options.linkFile;
    this.parked = new ParkedStore(this.layout.parked, options);
  }

  // ---------------------------------------------------------------- transaction

  begin(tx: TransactionId): Promise<BeginResult> {
    return this.mutex.run(() => this.beginNow(tx));
  }

  private async beginNow(tx: TransactionId): Promise<BeginResult> {
    assertTransactionId(tx);
    faultPoint('posix.begin.start');
    // a replica (dsg-agent replicate) changes only by replication from its primary
    const primary = await replicaOf(this.root);
    if (primary !== null) throw posixReplicaError(this.root, primary);
    const base = await this.currentNumber();
    if (base > 0 && !(await isDir(this.layout.snapshot(base))))
      throw corrupt(`current points at a missing snapshot s${base}`);
    await mkdir(this.layout.txDir, { recursive: true, mode: DIR_MODE });
    const work = this.layout.work(tx);
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
    faultPoint('posix.begin.after-mkdir');
    if (base > 0) {
      await cloneTree(this.layout.snapshot(base), work, this.linkFile ? { linkFile: this.linkFile } : {});
      faultPoint('posix.begin.after-clone');
    }
    const pattern: TransactionPattern = base === 0 ? 'init' : 'sync';
    this.txs.set(tx, { pattern, base, written: new Set() });
    await this.parked.prune();
    return { pattern, workPath: work };
  }

  commit(tx: TransactionId, snapshot: SnapshotInfo): Promise<void> {
    return this.mutex.run(() => this.commitNow(tx, snapshot));
  }

  private async commitNow(tx: TransactionId, snapshot: SnapshotInfo): Promise<void> {
    assertTransactionId(tx);
    const n = assertSnapshotId(snapshot.snapshotId);
    // A repeated commit (its first reply lost on the wire) finds its work area gone and
    // its snapshot current: report success again instead of a confusing NotFound.
    if (!(await isDir(this.layout.work(tx))) && (await this.currentNumber()) === n) {
      const meta = await readMeta(this.layout.snapshotMeta(n));
      if (meta?.transactionId === tx) return;
    }
    const work = await this.workArea(tx);
    const streaming = this.uploading.count(tx);
    if (streaming > 0) {
      // its temp file would be sealed into the snapshot, or land in a work area that is gone
      throw new TransactionCommitError(`${streaming} upload(s) of transaction ${tx} are still streaming`, tx, {
        recoveryHint: 'Wait for every writeFile of the transaction to finish before committing.',
      });
    }
    for (const k of ['message', 'manifestHash', 'user', 'createdAt'] as const) {
      if (typeof snapshot[k] !== 'string') throw new ValidationError(`snapshot ${k} must be a string`, { field: k });
    }
    const cur = await this.currentNumber();
    const state = this.txs.get(tx);
    if (state && state.base !== cur) {
      throw new TransactionCommitError(
        `current moved from s${state.base} to s${cur} since transaction ${tx} began`,
        tx,
        {
          recoveryHint: 'Another sync committed meanwhile; roll back and sync again.',
        },
      );
    }
    if (n !== cur + 1) {
      throw new TransactionCommitError(
        `snapshot ${snapshot.snapshotId} is not the next one (current is ${cur ? `s${cur}` : 'none'})`,
        tx,
        {
          recoveryHint: 'Roll back and sync again; the repository moved on.',
        },
      );
    }
    const snap = this.layout.snapshot(n);
    if (await exists(snap)) {
      throw new TransactionCommitError(`snapshots/s${n} already exists`, tx, {
        recoveryHint:
          'An interrupted commit left it behind: run recovery (any dsg command under the lock does), then sync again.',
      });
    }
    const meta: SnapshotMetadata = {
      snapshotId: snapshot.snapshotId,
      message: snapshot.message,
      manifestHash: snapshot.manifestHash,
      user: snapshot.user,
      createdAt: snapshot.createdAt,
      transactionId: tx,
    };
    const tempLink = this.layout.tempLink(tx);
    let renamed = false;
    try {
      faultPoint('posix.commit.start');
      await sealTree(work);
      faultPoint('posix.commit.after-seal');
      await mkdir(this.layout.snapshots, { recursive: true, mode: DIR_MODE });
      await writeFileAtomic(this.layout.snapshotMeta(n), JSON.stringify(meta, null, 2) + '\n', { mode: 0o444 });
      faultPoint('posix.commit.after-metadata');
      await rename(work, snap);
      renamed = true;
      await sealDir(snap);
      await fsyncDir(this.layout.snapshots);
      await fsyncDir(this.layout.txDir);
      faultPoint('posix.commit.after-rename');
      await rm(tempLink, { force: true });
      await symlink(Layout.linkTarget(n), tempLink);
      faultPoint('posix.commit.after-temp-link');
      // The commit point: one atomic rename of the new link over `current`.
      await rename(tempLink, this.layout.current);
    } catch (e) {
      await this.undoCommit(work, snap, n, tempLink, renamed);
      if (e instanceof DsgError) throw e;
      throw new TransactionCommitError(`commit of ${tx} as s${n} failed: ${(e as Error).message}`, tx, { cause: e });
    }
    this.txs.delete(tx);
    try {
      await fsyncDir(this.root);
    } catch (e) {
      // The switch happened; only its durability is in doubt.
      throw new TransactionCommitError(
        `s${n} committed but the directory could not be fsynced: ${(e as Error).message}`,
        tx,
        { cause: e },
      );
    }
    faultPoint('posix.commit.after-switch');
    await rmdir(this.layout.txDir).catch(() => undefined);
    // stored by the commit: no longer worth keeping (and the snapshot already shares the inode)
    if (state) await this.parked.drop(state.written);
  }

  /** Put things back after a commit failed before the switch, so rollback or a retry sees the work area again. */
  private async undoCommit(work: string, snap: string, n: number, tempLink: string, renamed: boolean): Promise<void> {
    await rm(tempLink, { force: true }).catch(() => undefined);
    if (renamed) {
      // back to writable for its owner (it is a work area again), setgid and group bits kept
      await lstat(snap)
        .then((st) => chmod(snap, (st.mode & 0o7777) | 0o200))
        .catch(() => undefined);
      await rename(snap, work).catch(() => forceRemove(snap).catch(() => undefined));
    }
    await rm(this.layout.snapshotMeta(n), { force: true }).catch(() => undefined);
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
    for (const [name, p] of [
      [`tx/${tx}`, this.layout.work(tx)],
      [path.basename(this.layout.tempLink(tx)), this.layout.tempLink(tx)],
    ] as const) {
      try {
        if (await forceRemove(p)) report.removed.push(name);
      } catch (e) {
        report.leftovers.push({ name, error: (e as Error).message });
      }
    }
    await rmdir(this.layout.txDir).catch(() => undefined);
    return report;
  }

  // ------------------------------------------------------------- work area writes

  /**
   * Three steps. Under the Mutex, SHARED with other writeFiles' path steps:
   * check the parents (resolveBeneath: no symlink, no file), create the
   * missing ones without following anything, check again, and open a new
   * temp name in that verified parent with O_CREAT | O_EXCL | O_NOFOLLOW (so
   * a link planted at the name is never followed). Outside it: stream into
   * the descriptor (bound to the inode, whatever happens to names
   * meanwhile), hash, fsync. Under it again, shared: the transaction is
   * still open, the parents are still real directories, then one rename
   * (which replaces a link at the final name, never follows it). Cleaning up
   * after a failure removes directories, so it holds the Mutex alone.
   *
   * Why the path steps of two writeFiles may run together: all they do to
   * the tree is lstat, mkdir (a real directory), create a regular temp file
   * and rename a regular file over a final name (which can replace a file
   * or a link, never a directory: that is EISDIR). None creates a link and
   * none removes or replaces a directory, so a parent one of them proved a
   * real directory stays one until its open or rename is done. Everything
   * that can plant a link or remove a directory — writeLink, deleteFile,
   * this cleanup, begin, commit, rollback, recover — holds the Mutex alone,
   * so it never runs between a check and the change it guards. The same
   * reasoning lets the shared steps skip the lstat of a parent an earlier
   * shared step proved, as long as no exclusive holder ran since
   * (ProvenDirs); the exclusive sections always lstat.
   */
  async writeFile(tx: TransactionId, rel: string, data: ByteStream, expected: ExpectedFile): Promise<{ size: number }> {
    assertTransactionId(tx);
    const want = typeof expected?.hash === 'string' ? expected.hash.toLowerCase() : '';
    if (!EXPECTED_HASH_RE.test(want))
      throw new ValidationError(`expected hash for ${rel} is not hex`, { path: rel, field: 'hash' });
    const mtime = expected.mtime === undefined ? undefined : new Date(expected.mtime);
    if (mtime && Number.isNaN(mtime.getTime()))
      throw new ValidationError(`bad mtime for ${rel}`, { path: rel, field: 'mtime' });
    let work = '';
    const created: string[] = [];
    const cleanup = (tmp?: string): Promise<void> =>
      this.mutex.run(async () => {
        if (tmp !== undefined) await rm(tmp, { force: true }).catch(() => undefined);
        await removeCreated(work, created);
      });
    let opened;
    try {
      opened = await this.mutex.runShared(async () => {
        work = await this.workArea(tx);
        // checks every parent not proved yet, makes the missing ones
        created.push(...(await mkdirsBeneath(work, rel, undefined, this.proven)));
        const full = await resolveBeneath(work, rel, this.proven); // again, after mkdir and right before the open
        const tmp = tempNameBeside(full);
        // A new inode every time: never write through a hard link shared with a snapshot.
        const fh = await open(
          tmp,
          constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
          FILE_MODE,
        );
        // counted before the section ends, so a commit queued behind it sees the upload
        this.uploading.start(tx);
        return { full, tmp, fh };
      });
    } catch (e) {
      if (created.length) await cleanup();
      throw e;
    }
    const { full, tmp, fh } = opened;
    let size = 0;
    let streamed = false;
    try {
      try {
        size = await streamVerified(fh, rel, data, expected, this.hasher, { fsync: true });
      } finally {
        await fh.close();
      }
      streamed = true;
      const failed = await this.mutex.runShared(async () => {
        try {
          await this.workArea(tx); // not rolled back meanwhile
          await resolveBeneath(work, rel, this.proven);
          await refuseDirectory(full, rel);
          await rename(tmp, full);
          // Parked at once (a second name of the same inode): a kill -9 of anything later leaves it parked.
          if (parksUpload(rel)) await this.parked.link(full, want);
          this.txs.get(tx)?.written.add(want);
          return null;
        } catch (e) {
          return { error: e };
        }
      });
      if (failed) {
        await cleanup(tmp);
        throw failed.error;
      }
    } catch (e) {
      if (!streamed) await cleanup(tmp);
      throw e;
    } finally {
      this.uploading.end(tx);
    }
    faultPoint('posix.put.after-write');
    return { size };
  }

  /**
   * A file the work area holds (a hard link of the snapshot begun from, or
   * this transaction's write) written to `to` through writeFile, so the
   * copy gets every check, the verification and the cleanup of an upload.
   * The source is opened under the Mutex, shared (deleteFile and writeLink
   * hold it alone), and counted as an upload until it is closed: a commit
   * waits for it. Bytes are copied rather than the inode linked: a write is
   * always a new inode, so an mtime set on the copy never reaches a
   * snapshot's file.
   */
  async copyFile(tx: TransactionId, from: string, to: string, expected: ExpectedFile): Promise<{ size: number }> {
    assertTransactionId(tx);
    assertSafeRelativePath(from);
    assertSafeRelativePath(to);
    const fh = await this.mutex.runShared(async () => {
      const source = await openCopySource(await this.workArea(tx), from, this.proven);
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
    const hash = parkedName(expected?.hash);
    const fh = await this.mutex.runShared(async () => {
      await this.workArea(tx);
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
      const work = await this.workArea(tx);
      const full = await resolveBeneath(work, rel);
      assertSafeLinkTarget(rel, target);
      await assertLinkTargetOnDisk(work, rel, target);
      const created = await mkdirsBeneath(work, rel);
      const tmp = tempNameBeside(full);
      try {
        await resolveBeneath(work, rel);
        await symlink(target, tmp);
        await refuseDirectory(full, rel);
        await rename(tmp, full);
      } catch (e) {
        await rm(tmp, { force: true }).catch(() => undefined);
        await removeCreated(work, created);
        throw e;
      }
    });
  }

  deleteFile(tx: TransactionId, rel: string): Promise<void> {
    return this.mutex.run(async () => {
      const work = await this.workArea(tx);
      const full = await resolveBeneath(work, rel);
      let st;
      try {
        st = await lstat(full);
      } catch (e) {
        if (errno(e) === 'ENOENT') return;
        throw e;
      }
      if (st.isDirectory())
        throw new ValidationError(`refused to delete ${JSON.stringify(rel)}: it is a directory`, { path: rel });
      // unlink removes this name only; a snapshot sharing the inode keeps it.
      await unlink(full);
      // Directories are not tracked by manifests: drop the ones this left empty
      // (real directories: resolveBeneath above proved no parent is a link).
      for (let d = path.dirname(full); d !== work && d.startsWith(work + path.sep); d = path.dirname(d)) {
        try {
          await rmdir(d);
        } catch {
          break;
        }
      }
    });
  }

  // ------------------------------------------------------------------- reading

  async exists(): Promise<boolean> {
    const n = await this.currentNumber();
    return n > 0 && (await isDir(this.layout.snapshot(n)));
  }

  async readFile(rel: string): Promise<ByteStream | null> {
    const n = await this.currentNumber();
    if (n === 0) return null;
    return readFrom(this.layout.snapshot(n), rel);
  }

  async listSnapshots(): Promise<SnapshotRef[]> {
    const cur = await this.currentNumber();
    if (cur === 0) return [];
    const out: { n: number; ref: SnapshotRef }[] = [];
    for (const ent of await readdir(this.layout.snapshots, { withFileTypes: true })) {
      const n = snapshotNumber(ent.name);
      // Numbers above current belong to a commit that never switched: not history.
      if (n === null || n > cur || !ent.isDirectory()) continue;
      out.push({ n, ref: await this.snapshotRef(n) });
    }
    return out.sort((a, b) => a.n - b.n).map((x) => x.ref);
  }

  async readSnapshotFile(snapshotId: string, rel: string): Promise<ByteStream | null> {
    return readFrom(await this.committedSnapshot(snapshotId), rel);
  }

  /** The read-only snapshot directory itself (no mount needed); `at` is ignored. */
  async mountSnapshot(snapshotId: string, _at?: string): Promise<string> {
    return this.committedSnapshot(snapshotId);
  }

  /** Nothing was mounted, so nothing to undo; a path that is no snapshot directory of this repository is refused. */
  unmountSnapshot(at: string): Promise<void> {
    const n = snapshotNumber(path.basename(at));
    if (n === null || at !== this.layout.snapshot(n))
      return Promise.reject(new NotFoundError(`no snapshot of ${this.root} is mounted at ${at}`));
    return Promise.resolve();
  }

  // ------------------------------------------------------------------ recovery

  /**
   * Remove what interrupted transactions left. The commit point is the
   * rename of `current`: a snapshot directory numbered above `current` is a
   * commit that never switched, so it is removed (rolled back) — the
   * repository stays exactly at the snapshot `current` names. Must run under
   * the repository lock (no transaction in flight).
   */
  recover(): Promise<RecoveryReport> {
    return this.mutex.run(() => this.recoverNow());
  }

  private async recoverNow(): Promise<RecoveryReport> {
    const report: RecoveryReport = { removed: [], leftovers: [], transactions: [] };
    this.txs.clear();
    if (!(await isDir(this.root))) return report;
    let cur: number;
    try {
      cur = await this.currentNumber();
    } catch (e) {
      report.leftovers.push({ name: 'current', error: (e as Error).message });
      return report;
    }
    const attempt = async (name: string, p: string): Promise<boolean> => {
      try {
        await forceRemove(p);
        report.removed.push(name);
        return true;
      } catch (e) {
        report.leftovers.push({ name, error: (e as Error).message });
        return false;
      }
    };
    const seen = new Set<string>();
    for (const name of await readdir(this.root)) {
      if (name.startsWith(TEMP_LINK_PREFIX)) await attempt(name, path.join(this.root, name));
    }
    for (const name of await readdirOrEmpty(this.layout.snapshots)) {
      const p = path.join(this.layout.snapshots, name);
      const n = snapshotNumber(name);
      if (n !== null && n > cur) {
        const meta = await readMeta(this.layout.snapshotMeta(n));
        if ((await attempt(`snapshots/${name}`, p)) && meta?.transactionId && !seen.has(meta.transactionId)) {
          seen.add(meta.transactionId);
          report.transactions.push({ transactionId: meta.transactionId, action: 'rolled-back' });
        }
      } else if (name.startsWith('.')) {
        await attempt(`snapshots/${name}`, p); // a metadata temp file
      }
    }
    for (const name of await readdirOrEmpty(this.layout.snapshots)) {
      const n = name.endsWith('.json') ? snapshotNumber(name.slice(0, -'.json'.length)) : null;
      if (n !== null && n > cur) await attempt(`snapshots/${name}`, path.join(this.layout.snapshots, name));
    }
    for (const name of await readdirOrEmpty(this.layout.txDir)) {
      if (
        (await attempt(`tx/${name}`, path.join(this.layout.txDir, name))) &&
        isTransactionId(name) &&
        !seen.has(name)
      ) {
        seen.add(name);
        report.transactions.push({ transactionId: name, action: 'rolled-back' });
      }
    }
    await rmdir(this.layout.txDir).catch(() => undefined);
    await this.parked.prune();
    if (cur > 0 && !(await isDir(this.layout.snapshot(cur)))) {
      report.leftovers.push({ name: 'current', error: `points at missing snapshots/s${cur}` });
    }
    return report;
  }

  // ------------------------------------------------------------------- helpers

  /** N of the snapshot `current` names; 0 when there is none yet. */
  async currentNumber(): Promise<number> {
    let target: string;
    try {
      target = await readlink(this.layout.current);
    } catch (e) {
      if (errno(e) === 'ENOENT') return 0;
      if (errno(e) === 'EINVAL') throw corrupt('current is not a symlink');
      throw e;
    }
    const n = Layout.parseLinkTarget(target);
    if (n === null) throw corrupt(`current points at ${JSON.stringify(target)}, not snapshots/sN`);
    return n;
  }

  private async workArea(tx: TransactionId): Promise<string> {
    assertTransactionId(tx);
    const work = this.layout.work(tx);
    if (!(await isDir(work))) {
      throw new NotFoundError(`no open transaction ${tx} in ${this.root}`, {
        recoveryHint: 'Begin the transaction first (it may have been rolled back).',
      });
    }
    return work;
  }

  private async committedSnapshot(snapshotId: string): Promise<string> {
    const n = assertSnapshotId(snapshotId);
    const cur = await this.currentNumber();
    const dir = this.layout.snapshot(n);
    if (n > cur || !(await isDir(dir)))
      throw new NotFoundError(`snapshot ${snapshotId} does not exist in ${this.root}`);
    return dir;
  }

  private async snapshotRef(n: number): Promise<SnapshotRef> {
    const meta = await readMeta(this.layout.snapshotMeta(n));
    const ref: SnapshotRef = {
      snapshotId: `s${n}`,
      createdAt: meta?.createdAt ?? (await stat(this.layout.snapshot(n))).mtime.toISOString(),
    };
    if (meta) {
      ref.message = meta.message;
      ref.manifestHash = meta.manifestHash;
      ref.user = meta.user;
    }
    return ref;
  }
}

function corrupt(why: string): DsgError {
  return new DsgError('CORRUPT', `repository layout damaged: ${why}`, {
    recoveryHint: 'Inspect <repo>/current and <repo>/snapshots by hand; current must be a symlink to snapshots/sN.',
  });
}

async function exists(p: string): Promise<boolean> {
  try {
    await lstat(p);
    return true;
  } catch (e) {
    if (errno(e) === 'ENOENT') return false;
    throw e;
  }
}

async function isDir(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isDirectory();
  } catch (e) {
    if (errno(e) === 'ENOENT' || errno(e) === 'ENOTDIR') return false;
    throw e;
  }
}

async function readdirOrEmpty(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (e) {
    if (errno(e) === 'ENOENT') return [];
    throw e;
  }
}

async function readMeta(file: string): Promise<SnapshotMetadata | null> {
  try {
    const v = JSON.parse(await readFile(file, 'utf8')) as unknown;
    return v !== null && typeof v === 'object' ? (v as SnapshotMetadata) : null;
  } catch {
    return null;
  }
}
