import type { LockHolder } from './errors.js';
import type { TransactionId } from './transaction-id.js';

/** Bytes in motion. A node Readable is one; so is any async generator. */
export type ByteStream = AsyncIterable<Uint8Array>;

/** A streaming hash (xxh3-64 in dsg), injected so backends need no hash library. */
export interface StreamHasher {
  update(chunk: Uint8Array): void;
  /** lowercase hex, 16 digits for xxh3-64 */
  digest(): string;
}
export type HasherFactory = () => StreamHasher;

/** What the caller promises about a file it sends; the receiver verifies it. */
export interface ExpectedFile {
  /** lowercase hex xxh3-64 of the content */
  hash: string;
  size?: number;
  /** ISO 8601; applied to the written file when given */
  mtime?: string;
}

/** Which pattern a remote transaction took (detected at begin). */
export type TransactionPattern = 'init' | 'sync';

export interface BeginResult {
  pattern: TransactionPattern;
  /** where the transaction writes (a clone, a temp dataset, a work dir) */
  workPath: string;
}

/** What a commit turns into: the snapshot `sN` and its metadata. */
export interface SnapshotInfo {
  /** `s1`, `s2`, … — the manifest's snapshot_id */
  snapshotId: string;
  message: string;
  /** the manifest's snapshot_hash */
  manifestHash: string;
  user: string;
  /** ISO 8601 */
  createdAt: string;
}

export interface SnapshotRef {
  snapshotId: string;
  /** ISO 8601 creation time as the backend recorded it */
  createdAt: string;
  message?: string;
  manifestHash?: string;
  user?: string;
}

/** What a rollback or recovery could not do. Rollback never throws. */
export interface CleanupReport {
  removed: string[];
  /** objects that could not be removed, with the reason */
  leftovers: { name: string; error: string }[];
}

export interface RecoveryReport extends CleanupReport {
  /** transactions found, and what was done with each */
  transactions: { transactionId: string; action: 'rolled-back' | 'rolled-forward' | 'cleaned' }[];
}

/**
 * The repository side of a transaction (seed section 2). Implemented by
 * @dsg/zfs-ops and @dsg/posix-ops on the server, and by the agent client of
 * @dsg/transports on the client (the same calls, over the wire).
 *
 * Paths are repository-relative POSIX paths, checked with
 * `assertSafeRelativePath` / `resolveBeneath` before any disk access.
 */
export interface RemoteFilesystem {
  /**
   * The repository's layout, for a client that writes its config:
   * `flat` (the original HRDAG/dsg's xfs tree), `legacy` (its ZFS dataset),
   * `dsg`; null when there is no repository yet. Optional: a backend with
   * one layout need not say.
   */
  repositoryLayout?(): Promise<string | null>;
  /** Detects init vs sync once; remembers it for commit. */
  begin(tx: TransactionId): Promise<BeginResult>;
  /** Makes the work area the next snapshot. Failure → TransactionCommitError. */
  commit(tx: TransactionId, snapshot: SnapshotInfo): Promise<void>;
  /** Removes every trace of tx. Never throws; reports what it could not remove. */
  rollback(tx: TransactionId): Promise<CleanupReport>;

  /** Write a file into the work area: temp name, fsync, rename; hash verified, mismatch refused. */
  writeFile(tx: TransactionId, path: string, data: ByteStream, expected: ExpectedFile): Promise<{ size: number }>;
  /**
   * Copy a file the work area already holds (the snapshot the transaction
   * began from, with this transaction's writes and deletes) to `to`, verified
   * against `expected` exactly like an upload, so a rename, a copy or a revert
   * sends no content. A source that is absent → NotFoundError; a link,
   * directory or special file → ValidationError; other content → HASH_MISMATCH.
   * Nothing is left behind on a refusal.
   */
  copyFile(tx: TransactionId, from: string, to: string, expected: ExpectedFile): Promise<{ size: number }>;
  /**
   * Hashes of parked content: files that uploads of rolled-back transactions
   * (an interrupted sync: Ctrl-C, a dropped connection, a killed client)
   * wrote and verified. The next transaction places them with `copyParked`
   * instead of receiving them again. Parked content is dropped once a commit
   * has stored it, and in any case after `PARKED_TTL_MS`.
   */
  parkedContent(): Promise<string[]>;
  /**
   * Place parked content of `expected.hash` at `to` in the work area,
   * verified like an upload. None parked → NotFoundError (the caller sends it).
   */
  copyParked(tx: TransactionId, to: string, expected: ExpectedFile): Promise<{ size: number }>;
  /** Create a symlink in the work area (target already validated as relative and inside). */
  writeLink(tx: TransactionId, path: string, target: string): Promise<void>;
  /** Delete a file or link in the work area; missing is not an error. */
  deleteFile(tx: TransactionId, path: string): Promise<void>;

  /** Whether the repository exists (has at least one committed snapshot). */
  exists(): Promise<boolean>;
  /** A file of the current (latest committed) snapshot, or null if absent. */
  readFile(path: string): Promise<ByteStream | null>;
  /** List committed snapshots, oldest first. */
  listSnapshots(): Promise<SnapshotRef[]>;
  /** A file as it was in snapshot `sN`, or null if absent there. */
  readSnapshotFile(snapshotId: string, path: string): Promise<ByteStream | null>;
  /** Leftovers of interrupted transactions → rolled back or forward. */
  recover(): Promise<RecoveryReport>;
}

/** Read-only views of old snapshots, where the backend can give them. */
export interface SnapshotMounter {
  /** Make snapshot sN readable at a path (ZFS: a mounted clone; posix: the snapshot dir). */
  mountSnapshot(snapshotId: string, at?: string): Promise<string>;
  unmountSnapshot(at: string): Promise<void>;
}

/**
 * Where the repositories of one repository type live, for the agent that
 * serves them: the one owner of "type → backend + lock file + listing"
 * (`posixHost` of @dsg/posix-ops covers posix and the original's flat xfs
 * tree, `zfsHost` of @dsg/zfs-ops the ZFS datasets). The agent server takes
 * a host and knows no backend; the dsg-agent command and the CLI's
 * in-process agent only pick the host for a repository type.
 *
 * Names reach a host already checked by the server (one path/dataset
 * component); a host refuses anything else again.
 */
export interface RepositoryHost {
  /** The backend of repository NAME. Does not create anything (init happens in its first transaction). */
  open(name: string): RemoteFilesystem & Partial<SnapshotMounter>;
  /**
   * Where NAME's lock file is. Every agent and every dsg version serving
   * the repository must name the same file, so it follows the repository,
   * not a client's config: a host may ask its backend (ZFS: where the
   * parent dataset is really mounted), hence a promise. The server asks
   * once per session and uses the answer for that session's every lock.
   */
  lockFile(name: string): string | Promise<string>;
  /** The repositories this host holds, sorted (leftovers of interrupted transactions left out). */
  list(): Promise<string[]>;
  /**
   * The same repositories with their newest snapshot and replica marker
   * (`listRepositories` with `details`). A host without it answers
   * names only: head and replicaOf are then unknown.
   */
  summaries?(): Promise<RepositorySummary[]>;
}

/** One repository as `listRepositories` with `details: true` reports it (`dsg list-repos`). */
export interface RepositorySummary {
  name: string;
  /** the newest committed snapshot (`sN`); null: none yet; absent: unknown (an agent that answers names only) */
  head?: string | null;
  /**
   * `<primary host>:<primary dataset>` when this is a read-only replica
   * (its `dsg:replica-of`); null: not a replica; absent: unknown (an older agent)
   */
  replicaOf?: string | null;
}

/**
 * A remote repository as a client sees it through the agent: the
 * RemoteFilesystem plus the repository lock.
 */
export interface RemoteRepository extends RemoteFilesystem {
  lock(holder: LockHolder): Promise<void>;
  unlock(): Promise<void>;
  /**
   * Many files in one request: `data` is their bytes back to back, each
   * exactly its `expected.size`, and each lands as `writeFile` would land it
   * (verified, parked), in order. One reply for the batch: its sizes; the
   * first refusal fails the batch, and the files before it stay written.
   * This is how small files travel without a round trip each.
   */
  writeFiles(tx: TransactionId, files: readonly BatchFile[], data: ByteStream): Promise<{ sizes: number[] }>;
  /**
   * Many files of the head (or of snapshot `snapshotId`) in one download:
   * their bytes back to back, each exactly its `size`, for the caller to cut
   * (StreamSplitter). A file missing (NotFoundError) or of another size
   * (HASH_MISMATCH) fails the stream, naming it.
   */
  readFiles(files: readonly SizedPath[], snapshotId?: string): Promise<ByteStream>;
  /**
   * SHA-256 and size of a file of the current snapshot (null: absent),
   * computed where the file is: the caller learns whether its own copy is
   * byte-identical without the bytes crossing the wire (`dsg status` with
   * nothing new in the repository). undefined: this repository cannot tell
   * (an agent older than protocol 1.2); read the file instead. SHA-256, not
   * xxh3: the file is repository content, which a teammate writes, and a
   * forged match must be out of reach. Optional.
   */
  fileDigest?(path: string): Promise<FileDigest | null | undefined>;
}

/** What `fileDigest` reports of a file: the SHA-256 of its bytes (64 lowercase hex digits) and their number. */
export interface FileDigest {
  sha256: string;
  size: number;
}

/** A file of a `readFiles` batch: where, and how many bytes the caller expects (where the next file begins). */
export interface SizedPath {
  path: string;
  size: number;
}

/** One file of a `writeFiles` batch: its size is required (it is where the next file's bytes begin). */
export interface BatchFile {
  path: string;
  expected: ExpectedFile & { size: number };
}

/** The client side of a transaction (seed section 4). */
export interface ClientFilesystem {
  readonly root: string;
  begin(tx: TransactionId): Promise<void>;
  /** Apply everything staged: journal, backups, renames, new last-sync; then drop the journal. */
  commit(tx: TransactionId): Promise<void>;
  /** Remove staging, restore backups: the tree ends byte-identical to before. */
  rollback(tx: TransactionId): Promise<CleanupReport>;

  /** Stream a download into staging; hash-verified on arrival. */
  stageFile(tx: TransactionId, path: string, data: ByteStream, expected: ExpectedFile): Promise<void>;
  stageLink(tx: TransactionId, path: string, target: string): Promise<void>;
  /**
   * Stage parked content at path: a download of an interrupted sync or clone,
   * kept by hash when it was staged. False when none is parked or it no longer
   * verifies: the caller downloads it.
   */
  stageParked(tx: TransactionId, path: string, expected: ExpectedFile): Promise<boolean>;

  /** The file at path will be deleted (moved to backup) at commit. */
  stageDelete(tx: TransactionId, path: string): Promise<void>;
  /**
   * A metadata file under .dsg/ (last-sync.json, sync-messages.json, archive/…) replaced at commit;
   * its content whole or in chunks (a large manifest is written as it is made).
   */
  stageMeta(
    tx: TransactionId,
    path: string,
    content: Uint8Array | Iterable<Uint8Array> | AsyncIterable<Uint8Array>,
  ): Promise<void>;
  /** The remote snapshot this apply belongs to, for journal recovery. */
  setRemoteSnapshot(tx: TransactionId, snapshotId: string): Promise<void>;

  /** A local file's bytes (for upload). */
  readFile(path: string): ByteStream;
}

/** The byte channel to an agent (seed section 3). */
export interface Transport {
  /** Open the session (connect, exec the agent). Idempotent. */
  begin(): Promise<void>;
  /** Close everything begin opened. Safe twice and after a failed begin. */
  end(): Promise<void>;
}

/**
 * One line of progress, for bars and logs. `bytes` counts as data flows (read
 * for hashing, read onto the wire, arrived), not when a file ends, so a single
 * big file moves a bar; scan/hash events carry files seen (`files`), files
 * hashed (`hashedFiles`) and bytes hashed. `reusedBytes` (part of `bytes`):
 * content placed without crossing the wire (copied on the server, parked,
 * a local copy), counted whole at once, so a rate leaves it out.
 */
export interface ProgressEvent {
  phase: 'scan' | 'hash' | 'upload' | 'download' | 'delete' | 'commit';
  files: number;
  totalFiles?: number;
  hashedFiles?: number;
  bytes: number;
  totalBytes?: number;
  reusedBytes?: number;
  path?: string;
}
export type ProgressListener = (e: ProgressEvent) => void;
