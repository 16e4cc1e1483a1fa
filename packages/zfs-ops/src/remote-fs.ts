import { randomBytes } from 'node:crypto';
import { mkdir, stat } from 'node:fs/promises';
import path from 'node:path';
import {
  chunksOf,
  assertSafeRelativePath,
  DsgError,
  faultPoint,
  Mutex,
  NotFoundError,
  removeCreated,
  TransactionCommitError,
  ValidationError,
  ZfsOperationError,
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
  contentMismatch,
  ParkedStore,
  type ParkedOptions,
  parkedName,
  parksUpload,
  ProvenDirs,
  snapshotRefOf,
} from '@dsg/contracts';
import {
  deleteInside,
  dropWrite,
  finishWrite,
  openCopySource,
  openInside,
  prepareWrite,
  streamPrepared,
  writeLinkInside,
  type PreparedWrite,
} from './file-ops.js';
import { noZfsSnapshot, readSyncMessages, snapshotNumber, type Layout } from './layout.js';
import { assertDatasetName, assertSnapshotId, decodePropValue, isRepositoryName } from './names.js';
import { PROP, ZfsOperations, type Logger, type RepositoryState } from './operations.js';
import { parentDir } from './parent-dir.js';
import { zfsParkedDirName } from './parked.js';
import type { ZfsRunner } from './runner.js';
import { Zfs, type BusyRetry } from './zfs.js';

export interface ZfsRemoteFilesystemOptions extends ParkedOptions {
  /** the parent dataset P; repositories are P/<repo> */
  parent: string;
  /** the repository name */
  repo: string;
  /**
   * where P is assumed to be mounted. Only a default and a check: the
   * repository's tree, the work areas and the views are found where ZFS
   * says they are mounted (a repository made by HRDAG/dsg has its own
   * mountpoint, anywhere).
   */
  mountpoint: string;
  hasher: HasherFactory;
  /** default: `zfs` run directly; `createZfsRunner({ sudo: true })` for `sudo -n zfs` */
  runner?: ZfsRunner;
  /** how long busy errors are retried */
  retry?: BusyRetry;
  log?: Logger;
  /** how long a read waits for another client's commit to leave its rename window (default 60 s) */
  settleTimeoutMs?: number;
  /** P's directory (see parentDir), when the caller already knows it: zfsHost shares its lock directory */
  parentDir?: () => Promise<string>;
}

/** The ZFS backend of a repository: transactions (init/sync auto-detected), files in the work area, history. */
export class ZfsRemoteFilesystem implements RemoteFilesystem, SnapshotMounter {
  readonly ops: ZfsOperations;
  private readonly zfs: Zfs;
  private readonly hasher: HasherFactory;
  private readonly log: Logger;
  private tx: TransactionId | null = null;
  private workPath: string | null = null;

  /** where ZFS said the live dataset is mounted, once seen (see readFile) */
  private live: string | null = null;
  /** Every work-area mutation runs in here, one at a time (see Mutex of @dsg/contracts). */
  private readonly mutex = new Mutex();
  /** Parents the shared path steps proved real directories (valid until an exclusive holder runs: see ProvenDirs). */
  private readonly proven = new ProvenDirs(this.mutex);
  /** uploads whose data is still streaming (commit refuses while there are any) */
  private uploading = 0;
  /** the open transaction's verified uploads still in the work area (path → hash): parked by a rollback */
  private uploads = new Map<string, string>();
  /** every hash the open transaction wrote or placed: no longer parked once it commits */
  private written = new Set<string>();
  private readonly parkedOptions: ParkedOptions;
  /** the parked directory, once found (see parked()) */
  private parkedDir: string | null = null;
  private readonly parentDir: (() => Promise<string>) | undefined;

  constructor(options: ZfsRemoteFilesystemOptions) {
    this.zfs = new Zfs({
      ...(options.runner ? { runner: options.runner } : {}),
      ...(options.retry ? { retry: options.retry } : {}),
    });
    this.log = options.log ?? ((level, line) => level === 'warn' && console.warn(`[dsg zfs] ${line}`));
    this.ops = new ZfsOperations({
      parent: options.parent,
      repo: options.repo,
      mountpoint: options.mountpoint,
      zfs: this.zfs,
      log: this.log,
      ...(options.settleTimeoutMs !== undefined ? { settleTimeoutMs: options.settleTimeoutMs } : {}),
    });
    this.hasher = options.hasher;
    this.parentDir = options.parentDir;
    this.parkedOptions = {
      ...(options.parkedTtlMs !== undefined ? { parkedTtlMs: options.parkedTtlMs } : {}),
      ...(options.now ? { now: options.now } : {}),
    };
  }

  /**
   * The parked content, in `<dir of P>/.<repo>.dsg-parked/`: the directory
   * the lock file is in (P's mountpoint as ZFS reports it, else the
   * configured one), so every agent of P finds the same one.
   */
  private async parked(): Promise<ParkedStore> {
    if (this.parkedDir === null) {
      const dir = this.parentDir
        ? await this.parentDir()
        : (await parentDir(this.zfs, this.ops.parent, this.ops.mountpoint)).dir;
      this.parkedDir = path.join(dir, zfsParkedDirName(this.ops.repo));
    }
    return new ParkedStore(this.parkedDir, this.parkedOptions);
  }

  /** parked() for the best-effort steps: null (and a log line) when it cannot be found. */
  private async parkedQuietly(): Promise<ParkedStore | null> {
    try {
      return await this.parked();
    } catch (e) {
      this.log('warn', `parked content unavailable: ${e instanceof Error ? e.message : String(e)}`);
      return null;
    }
  }

  begin(tx: TransactionId): Promise<BeginResult> {
    return this.mutex.run(() => this.beginNow(tx));
  }

  private async beginNow(tx: TransactionId): Promise<BeginResult> {
    if (this.tx === tx)
      throw new ValidationError(
        `transaction ${tx} already has a work area`,
        { field: 'transactionId' },
        { code: 'TX_EXISTS', recoveryHint: 'Use a new transaction id for a new transaction.' },
      );
    if (this.tx)
      throw new DsgError('TX_STATE', `transaction ${this.tx} is still open`, {
        recoveryHint: 'Commit or roll back the open transaction first.',
      });
    const r = await this.ops.begin(tx);
    this.tx = tx;
    this.workPath = r.workPath;
    this.uploads = new Map();
    this.written = new Set();
    await (await this.parkedQuietly())?.prune();
    return r;
  }

  commit(tx: TransactionId, snapshot: SnapshotInfo): Promise<void> {
    return this.mutex.run(() => this.commitNow(tx, snapshot));
  }

  private async commitNow(tx: TransactionId, snapshot: SnapshotInfo): Promise<void> {
    if (tx === this.tx && this.uploading > 0) {
      // an open file keeps the work dataset busy, and a half-written temp file would be snapshotted
      throw new TransactionCommitError(`${this.uploading} upload(s) of transaction ${tx} are still streaming`, tx, {
        recoveryHint: 'Wait for every writeFile of the transaction to finish before committing.',
      });
    }
    // not a failed commit: nothing of tx is open here, and the open one (if any) stays open
    if (tx !== this.tx) throw this.notOpen(tx);
    const written = this.written;
    try {
      this.log('info', `committing ZFS transaction ${tx} as ${snapshot.snapshotId}`);
      await this.ops.commit(tx, snapshot);
    } catch (e) {
      this.log('warn', `ZFS commit of ${tx} failed: ${e instanceof Error ? e.message : String(e)}`);
      throw new TransactionCommitError(`ZFS commit failed: ${e instanceof Error ? e.message : String(e)}`, tx, {
        recoveryHint: 'Check ZFS pool health and available space',
        cause: e,
      });
    } finally {
      this.tx = null;
      this.workPath = null;
      this.live = null;
      this.uploads = new Map();
      this.written = new Set();
    }
    // stored by the commit: no longer worth keeping
    await (await this.parkedQuietly())?.drop(written);
  }

  rollback(tx: TransactionId): Promise<CleanupReport> {
    return this.mutex.run(() => this.rollbackNow(tx));
  }

  private async rollbackNow(tx: TransactionId): Promise<CleanupReport> {
    if (tx !== this.tx)
      this.log(
        'warn',
        `Transaction ID mismatch during ZFS rollback: expected ${this.tx ?? '(none)'}, got ${tx}; rolling back ${tx} anyway`,
      );
    // before the work dataset is destroyed: what it received and verified is kept for the next transaction
    if (tx === this.tx && this.workPath) await this.parkUploads(this.workPath);
    try {
      return await this.ops.rollback(tx);
    } catch (e) {
      // ops.rollback reports instead of throwing; this is the last guard
      return {
        removed: [],
        leftovers: [{ name: this.ops.dataset, error: e instanceof Error ? e.message : String(e) }],
      };
    } finally {
      this.live = null;
      if (tx === this.tx) {
        this.tx = null;
        this.workPath = null;
        this.uploads = new Map();
        this.written = new Set();
      }
    }
  }

  /**
   * Copy each verified upload still in the work area into the parked
   * directory (skipping what is parked already), verifying its hash again on
   * the way: a file changed since is not parked. Never throws: a failure is
   * logged and only costs the next sync a resend.
   */
  private async parkUploads(work: string): Promise<void> {
    if (this.uploads.size === 0) return;
    const parked = await this.parkedQuietly();
    if (!parked) return;
    let have: Set<string>;
    try {
      have = new Set(await parked.hashes()); // an expired one is stored afresh
    } catch (e) {
      this.log('warn', `cannot list parked content: ${e instanceof Error ? e.message : String(e)}`);
      return;
    }
    for (const [rel, hash] of this.uploads) {
      if (have.has(hash)) continue;
      try {
        const fh = await openCopySource(work, rel);
        try {
          await parked.store(hash, chunksOf(fh), this.hasher);
        } finally {
          await fh.close();
        }
        have.add(hash);
      } catch (e) {
        this.log('info', `not parked: ${rel}: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
  }

  private work(tx: TransactionId): string {
    if (tx !== this.tx || !this.workPath) throw this.notOpen(tx);
    return this.workPath;
  }

  /** The RemoteFilesystem contract's error for a transaction that is not open (never begun, committed, rolled back). */
  private notOpen(tx: TransactionId): NotFoundError {
    return new NotFoundError(
      `no open transaction ${tx} in ${this.ops.dataset}: not the open one (${this.tx ?? 'none'})`,
      {
        recoveryHint: 'Begin the transaction first (it may have been rolled back).',
      },
    );
  }

  /**
   * Under the Mutex, SHARED with other writeFiles' path steps: parents
   * checked, created without following links, checked again, temp file
   * opened O_CREAT | O_EXCL | O_NOFOLLOW. Outside it: the data streamed
   * into that descriptor and verified. Under it again, shared: still the
   * open transaction, parents still real directories, rename. Cleaning up
   * after a failure removes directories, so it holds the Mutex alone. (See
   * file-ops.ts.)
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
    assertSafeRelativePath(rel);
    let root = '';
    const created: string[] = [];
    let w: PreparedWrite;
    try {
      w = await this.mutex.runShared(async () => {
        root = this.work(tx);
        const prepared = await prepareWrite(root, rel, created, this.proven);
        this.uploading++; // before the section ends, so a commit queued behind it sees the upload
        return prepared;
      });
    } catch (e) {
      if (created.length) await this.mutex.run(() => removeCreated(root, created));
      throw e;
    }
    let r: { size: number };
    try {
      r = await streamPrepared(w, rel, data, expected, this.hasher);
      const failed = await this.mutex.runShared(async () => {
        try {
          if (this.work(tx) !== root)
            throw new DsgError('TX_STATE', `transaction ${tx} ended while ${rel} was uploading`);
          await finishWrite(root, rel, w, this.proven);
          const hash = expected.hash.toLowerCase();
          if (parksUpload(rel)) this.uploads.set(rel, hash);
          this.written.add(hash);
          return null;
        } catch (e) {
          return { error: e };
        }
      });
      if (failed) throw failed.error;
    } catch (e) {
      await this.mutex.run(() => dropWrite(root, w));
      throw e;
    } finally {
      this.uploading--;
    }
    faultPoint('zfs.put.after-write');
    return r;
  }

  /**
   * A file of the work area (the clone of the head, with this transaction's
   * writes and deletes) written to `to` through writeFile: every check, the
   * verification and the cleanup of an upload. The source is opened under
   * the Mutex, shared (deleteFile and writeLink hold it alone), and counted
   * as an upload until it is closed: an open file keeps the work dataset
   * busy, so a commit waits for it.
   */
  async copyFile(tx: TransactionId, from: string, to: string, expected: ExpectedFile): Promise<{ size: number }> {
    assertSafeRelativePath(from);
    assertSafeRelativePath(to);
    const fh = await this.mutex.runShared(async () => {
      const source = await openCopySource(this.work(tx), from, this.proven);
      this.uploading++;
      return source;
    });
    try {
      return await this.writeFile(tx, to, chunksOf(fh), expected);
    } finally {
      this.uploading--;
      await fh.close();
    }
  }

  async parkedContent(): Promise<string[]> {
    const parked = await this.parkedQuietly();
    return parked ? parked.hashes() : [];
  }

  /**
   * Parked content written to `to` through writeFile (every check and the
   * verification of an upload), like copyFile. Parked content that no
   * longer matches its hash is refused (HASH_MISMATCH) and removed.
   */
  async copyParked(tx: TransactionId, to: string, expected: ExpectedFile): Promise<{ size: number }> {
    assertSafeRelativePath(to);
    const hash = parkedName(expected?.hash);
    const fh = await this.mutex.runShared(async () => {
      this.work(tx);
      const source = await (await this.parked()).open(hash);
      this.uploading++;
      return source;
    });
    try {
      return await this.writeFile(tx, to, chunksOf(fh), expected);
    } catch (e) {
      if (contentMismatch(e)) await (await this.parked()).discard(hash, fh);
      throw e;
    } finally {
      this.uploading--;
      await fh.close();
    }
  }

  async writeLink(tx: TransactionId, rel: string, target: string): Promise<void> {
    assertSafeRelativePath(rel);
    return this.mutex.run(async () => {
      await writeLinkInside(this.work(tx), rel, target);
      this.uploads.delete(rel);
    });
  }

  async deleteFile(tx: TransactionId, rel: string): Promise<void> {
    assertSafeRelativePath(rel);
    return this.mutex.run(async () => {
      await deleteInside(this.work(tx), rel);
      this.uploads.delete(rel);
    });
  }

  /** ops.inspect(), remembering where the live tree is (readFile then asks ZFS no more). */
  private async inspect(): Promise<RepositoryState | null> {
    const st = await this.ops.inspect();
    if (st?.liveDir) this.live ??= st.liveDir;
    return st;
  }

  /** Whether the repository has a head: `.dsg/last-sync.json` in its live tree, or (dsg's layout) an `@sN`. */
  async exists(): Promise<boolean> {
    return ((await this.inspect())?.head ?? null) !== null;
  }

  /**
   * `dsg` (this package's layout: an `@sN` per commit) or `legacy` (made or
   * synced by HRDAG/dsg: the head only in `.dsg/last-sync.json`); null when
   * the dataset does not exist. See layout.ts.
   */
  async repositoryLayout(): Promise<Layout | null> {
    return (await this.inspect())?.layout ?? null;
  }

  async readFile(rel: string): Promise<ByteStream | null> {
    assertSafeRelativePath(rel);
    // One zfs call per instance, not per file: a clone reads thousands of
    // files, and a repository that exists is never destroyed by dsg. Where
    // the tree is comes from ZFS (an explicit mountpoint can be anywhere).
    if (!this.live) {
      const dir = await this.ops.liveDir();
      if (dir === null) return null;
      this.live = dir;
    }
    return openInside(this.live, rel);
  }

  /**
   * Oldest first, the head last. dsg's layout: its `@sN` with their dsg:*
   * properties. Legacy: the history of `.dsg/sync-messages.json` (the
   * original's lags one behind) and any `@sN` before the head, then the head
   * from `.dsg/last-sync.json` — never "the highest @sN".
   */
  async listSnapshots(): Promise<SnapshotRef[]> {
    const st = await this.inspect();
    if (!st) return [];
    const headN = snapshotNumber(st.head);
    if (st.layout === 'dsg' || headN === null || !st.headMetadata || !st.liveDir) {
      return [...st.snapshots.entries()].sort((a, b) => a[0] - b[0]).map(([n, p]) => zfsRef(n, p));
    }
    const out = new Map<number, SnapshotRef>();
    for (const [n, md] of await readSyncMessages(st.liveDir)) if (n < headN) out.set(n, snapshotRefOf(`s${n}`, md));
    for (const [n, p] of st.snapshots) if (n < headN && !out.has(n)) out.set(n, zfsRef(n, p));
    out.set(headN, snapshotRefOf(`s${headN}`, st.headMetadata));
    return [...out.entries()].sort((a, b) => a[0] - b[0]).map(([, r]) => r);
  }

  /**
   * Where snapshot sN's files are: its ZFS snapshot; or, for the head of a
   * legacy repository (no `@sN`: the original syncs in place), the live
   * tree. A legacy snapshot before the head without `@sN` is a clear
   * NotFoundError, as is an id the repository never had.
   */
  private async locateSnapshot(snapshotId: string): Promise<{ snap: string } | { live: string }> {
    const n = assertSnapshotId(snapshotId);
    const snap = `${this.ops.dataset}@${snapshotId}`;
    if (await this.zfs.exists(snap)) return { snap };
    const st = await this.inspect();
    const headN = snapshotNumber(st?.head);
    if (st?.layout === 'legacy' && headN !== null) {
      if (n === headN && st.liveDir) return { live: st.liveDir };
      if (n < headN) throw noZfsSnapshot(snapshotId, this.ops.dataset);
    }
    throw new NotFoundError(`snapshot ${snapshotId} of ${this.ops.repo} does not exist`);
  }

  /**
   * A read-only clone of a snapshot. zfs-fuse has no `.zfs/snapshot`
   * directory, so a clone is the only way to see old bytes. Marked with
   * dsg:view=<kind>.<pid> so recovery can remove clones of dead readers.
   */
  private async cloneView(snap: string, kind: 'read' | 'mount', at?: string): Promise<{ name: string; dir: string }> {
    const name = `${this.ops.dataset}-view-${snap.slice(snap.indexOf('@') + 1)}-${randomBytes(4).toString('hex')}`;
    const props: Record<string, string> = { readonly: 'on', [PROP.view]: `${kind}.${process.pid}` };
    // An explicit mountpoint only for a throw-away clone that is never renamed.
    if (at) props['mountpoint'] = at;
    await this.zfs.clone(snap, name, props);
    if (at) return { name, dir: at };
    // inherited from P: where ZFS mounted it
    try {
      const m = await this.zfs.mountInfo(name);
      if (!m.mounted || !path.isAbsolute(m.mountpoint))
        throw new DsgError('ZFS_CONFIG', `the view ${name} is not mounted at a path (mountpoint=${m.mountpoint})`);
      return { name, dir: m.mountpoint };
    } catch (e) {
      await this.zfs.destroy(name, { recursive: true }).catch(() => undefined);
      throw e;
    }
  }

  async readSnapshotFile(snapshotId: string, rel: string): Promise<ByteStream | null> {
    assertSafeRelativePath(rel);
    const where = await this.locateSnapshot(snapshotId);
    if ('live' in where) return this.readFile(rel); // the head of a legacy repository is its live tree
    const snap = where.snap;
    // Where the platform has it (OpenZFS), .zfs/snapshot is the cheap path; zfs-fuse has none.
    const live = this.live ?? (await this.ops.liveDir().catch(() => null));
    const dotZfs = live ? path.join(live, '.zfs', 'snapshot', snapshotId) : null;
    if (dotZfs && (await isDir(dotZfs))) return openInside(dotZfs, rel);
    const view = await this.cloneView(snap, 'read');
    let done = false;
    const cleanup = async (): Promise<void> => {
      if (done) return;
      done = true;
      try {
        await this.zfs.destroy(view.name, { recursive: true });
      } catch (e) {
        if (e instanceof ZfsOperationError && /does not exist/.test(e.stderr ?? '')) return;
        this.log(
          'warn',
          `could not destroy read clone ${view.name} (recovery removes it): ${e instanceof Error ? e.message : String(e)}`,
        );
      }
    };
    let s: ByteStream | null;
    try {
      s = await openInside(view.dir, rel);
    } catch (e) {
      await cleanup();
      throw e;
    }
    if (!s) {
      await cleanup();
      return null;
    }
    const inner = s;
    // A generator, so the consumer's loop ends only after the clone is gone:
    // end, error and an early `break` (return()) all run the finally.
    return (async function* () {
      try {
        yield* inner;
      } finally {
        (inner as { destroy?: () => void }).destroy?.();
        await cleanup();
      }
    })();
  }

  async mountSnapshot(snapshotId: string, at?: string): Promise<string> {
    if (at !== undefined) {
      if (!path.isAbsolute(at) || path.resolve(at) !== at || /[\0\t\n\r,]/.test(at)) {
        throw new ValidationError(`refused mount path ${JSON.stringify(at)}: must be a normalized absolute path`, {
          path: at,
        });
      }
      await mkdir(at, { recursive: true });
    }
    const where = await this.locateSnapshot(snapshotId);
    if ('live' in where) {
      throw noZfsSnapshot(
        snapshotId,
        this.ops.dataset,
        `it is the head of ${this.ops.repo}: its files are the live tree, mounted at ${where.live}`,
      );
    }
    return (await this.cloneView(where.snap, 'mount', at)).dir;
  }

  async unmountSnapshot(at: string): Promise<void> {
    const v = (await this.ops.viewClones()).find(
      (c) => c.kind === 'mount' && (c.mountpoint === at || this.ops.pathOf(c.name) === at),
    );
    if (!v) throw new NotFoundError(`no snapshot of ${this.ops.repo} is mounted at ${at}`);
    await this.zfs.destroy(v.name, { recursive: true });
  }

  recover(): Promise<RecoveryReport> {
    return this.mutex.run(async () => {
      this.live = null;
      const report = await this.ops.recover();
      await (await this.parkedQuietly())?.prune();
      return report;
    });
  }
}

/** A SnapshotRef from an `@sN`'s creation time and dsg:* properties. */
function zfsRef(n: number, p: Map<string, string>): SnapshotRef {
  const ref: SnapshotRef = {
    snapshotId: `s${n}`,
    createdAt: new Date(Number(p.get('creation') ?? 0) * 1000).toISOString(),
  };
  const msg = p.get(PROP.message);
  const hash = p.get(PROP.manifestHash);
  const user = p.get(PROP.user);
  if (msg !== undefined) ref.message = decodePropValue(msg);
  if (hash !== undefined) ref.manifestHash = decodePropValue(hash);
  if (user !== undefined) ref.user = decodePropValue(user);
  return ref;
}

async function isDir(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isDirectory();
  } catch {
    return false;
  }
}

/** Repository names under P (temp siblings and view clones left out). */
export async function listZfsRepositories(options: {
  parent: string;
  mountpoint: string;
  runner?: ZfsRunner;
}): Promise<string[]> {
  assertDatasetName(options.parent);
  const zfs = new Zfs(options.runner ? { runner: options.runner } : {});
  const rows = await zfs.list([options.parent], ['name'], { depth: 1, types: ['filesystem'] });
  return rows
    .map((r) => r['name'] ?? '')
    .filter((n) => n.startsWith(options.parent + '/'))
    .map((n) => n.slice(options.parent.length + 1))
    .filter(isRepositoryName)
    .sort();
}
