/**
 * The error hierarchy. Every error a user can cause carries a `code` (stable,
 * for --json and tests) and a `recoveryHint` (one line: what to do next).
 */

/**
 * Every code a `DsgError` carries, with what it means. Codes are part of the
 * `--json` output and the agent wire: add new ones, never rename one.
 */
export const ERROR_CODES = {
  // generic
  VALIDATION: 'input refused by a rule (path, name, field, link target); details name it',
  CONFIG: 'a user or project configuration problem (ConfigError, exit 2)',
  USAGE: 'a command line the user got wrong (exit 2)',
  UNSUPPORTED: 'an operation this build, backend or agent cannot do',
  INTERNAL: 'a failure without a code of its own (a bug, or an error from below dsg)',
  IO: 'a file could not be read or written',
  NOT_FOUND: 'a repository, snapshot, file or open transaction that does not exist',
  PERMISSION: 'the repository host refused an operation (EACCES/EPERM)',
  NO_SPACE: 'no space left, locally or in the repository',
  CORRUPT: "a repository's layout is damaged (not something dsg leaves)",
  // transactions
  TX_COMMIT: 'a commit failed; the transaction is rolled back or recovered (TransactionCommitError)',
  TX_EXISTS: 'begin of a transaction id that already has a work area',
  TX_STATE: 'the operation does not fit the state of the transaction (another one open, it ended mid-upload)',
  TX_ID: 'not a transaction id',
  HASH_MISMATCH: 'bytes that do not hash (or size) to what the manifest says; nothing was written',
  // the sync engine and the CLI
  CONFLICT: 'the sync stopped at conflicts; resolve them in conflicts.txt (ConflictError, exit 3)',
  INVALID_NAMES: 'local paths whose names the rules refuse; the sync does not start',
  REMOTE_MANIFEST: "the repository's manifest is missing, unreadable or does not match its hashes",
  REMOTE_MOVED: 'the repository got a new snapshot between plan and commit',
  DIVERGED_HISTORY: 'the working copy and the repository have different histories',
  ALREADY_CLONED: 'clone into a directory that already is a working copy',
  REPO_EXISTS: 'init of a repository that already exists',
  DEST_NOT_EMPTY: 'clone into a directory that exists and is not empty',
  REPOSITORY_IN_PROJECT: 'the repository would be inside the working copy',
  CONFIG_CHANGE: "a teammate's .dsgconfig.yml changes data_dirs or ignore; needs --accept-config",
  NORMALIZE_TAKEN: 'sync --normalize: the NFC name is taken by another file',
  OUT_OF_SCOPE: 'the client refused to write a path outside the project scope',
  SCAN_UNREADABLE: 'a local file or directory could not be read while scanning',
  SCAN_UNSTABLE: 'a local file kept changing while it was hashed',
  ARCHIVE_TOO_LARGE: 'an LZ4 archive would decompress to more than the limit',
  // the agent, its protocol and the lock
  TRANSPORT: 'the connection to the agent failed or closed (TransportError)',
  CLOSED: 'the agent session is closed',
  CANCELLED: 'a download stream the client cancelled',
  SOURCE: "an upload's local source failed mid-stream",
  UNKNOWN_OP: 'the agent does not know the requested operation',
  NOT_LOCKED: 'an operation that needs the repository lock, without it',
  READ_ONLY: 'a mutating operation on an agent serving --read-only',
  RESTRICTED: 'a repository other than the one a --restrict-to-repository agent serves',
  LOCKED: 'another sync holds the repository lock (LockedError, exit 4)',
  STALE_LOCK: 'a stale lock this user may not remove (sticky directory)',
  LOCK_LOST: 'the session lost its lock while stopped; nothing was committed',
  // ZFS
  ZFS: 'a zfs command failed (ZfsOperationError)',
  ZFS_CONFIG: 'a pool, parent dataset or mountpoint that dsg cannot sync',
  ZFS_NOT_MOUNTED: 'the repository dataset is not mounted, so its tree cannot be read',
  ZFS_COMMIT_IN_FLIGHT:
    'the repository stayed between the renames of a commit (another sync committing, or one interrupted there)',
  ZFS_PERMISSION: 'the agent user may not chown new datasets (sudo rule missing)',
  ZFS_CHILD_DATASETS: 'the repository dataset has children a sync would not keep',
  ZFS_ORPHANS: 'leftovers of interrupted transactions block a begin; recover first',
  ZFS_SNAPSHOT_EXISTS: 'the @sN a commit would make exists already',
  ZFS_NOT_NEXT: "a legacy commit whose snapshot is not the head's next",
  ZFS_HEAD_MOVED: 'the head of a legacy dataset moved since begin (HRDAG/dsg synced meanwhile)',
  ZFS_LEGACY_MANIFEST: 'a legacy commit whose staged last-sync.json does not name the snapshot',
  ZFS_REPLICA: 'a write to a read-only replica; sync to its primary, or promote the replica',
} as const;

/** A DsgError's code: one of ERROR_CODES. */
export type ErrorCode = keyof typeof ERROR_CODES;

export function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(ERROR_CODES, code);
}

export interface DsgErrorOptions {
  recoveryHint?: string;
  cause?: unknown;
}

export class DsgError extends Error {
  readonly code: ErrorCode;
  readonly recoveryHint: string;

  constructor(code: ErrorCode, message: string, opts: DsgErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.code = code;
    this.recoveryHint = opts.recoveryHint ?? 'Run again with --debug for details.';
  }

  /** A plain object for --json output and the agent wire. */
  toJSON(): SerializedError {
    return { name: this.name, code: this.code, message: this.message, recoveryHint: this.recoveryHint };
  }
}

export interface SerializedError {
  name: string;
  /** an ErrorCode; a string on the wire, where an agent of another version may send one this build does not know */
  code: string;
  message: string;
  recoveryHint: string;
  details?: Record<string, unknown>;
}

export class TransactionCommitError extends DsgError {
  readonly transactionId: string;
  constructor(message: string, transactionId: string, opts: DsgErrorOptions = {}) {
    super('TX_COMMIT', message, {
      recoveryHint: opts.recoveryHint ?? 'Check remote filesystem permissions and available space',
      cause: opts.cause,
    });
    this.transactionId = transactionId;
  }
}

export interface ZfsErrorDetails {
  /** the argument vector that ran, e.g. ['zfs', 'rename', 'a', 'b'] */
  zfsCommand: readonly string[];
  path?: string;
  exitCode?: number;
  stderr?: string;
}

export class ZfsOperationError extends DsgError {
  readonly zfsCommand: readonly string[];
  readonly path: string | undefined;
  readonly exitCode: number | undefined;
  readonly stderr: string | undefined;
  constructor(message: string, details: ZfsErrorDetails, opts: DsgErrorOptions = {}) {
    super('ZFS', message, {
      recoveryHint: opts.recoveryHint ?? 'Check ZFS pool health and available space (zpool status; zfs list).',
      cause: opts.cause,
    });
    this.zfsCommand = details.zfsCommand;
    this.path = details.path;
    this.exitCode = details.exitCode;
    this.stderr = details.stderr;
  }
}

export class TransportError extends DsgError {
  constructor(message: string, opts: DsgErrorOptions = {}) {
    super('TRANSPORT', message, {
      recoveryHint: opts.recoveryHint ?? 'Check the connection to the repository host and try again.',
      cause: opts.cause,
    });
  }
}

export interface ValidationDetails {
  /** file that failed validation (manifest, config, ...) */
  file?: string;
  /** first bad field or path inside it */
  field?: string;
  /** the path component or name that was refused */
  path?: string;
  line?: number;
}

export class ValidationError extends DsgError {
  readonly details: ValidationDetails;
  constructor(message: string, details: ValidationDetails = {}, opts: DsgErrorOptions & { code?: ErrorCode } = {}) {
    super(opts.code ?? 'VALIDATION', message, {
      recoveryHint: opts.recoveryHint ?? 'Fix the named item and run the command again.',
      cause: opts.cause,
    });
    this.details = details;
  }
}

/** A user or project configuration problem (exit code 2). */
export class ConfigError extends ValidationError {
  constructor(message: string, details: ValidationDetails = {}, opts: DsgErrorOptions = {}) {
    super(message, details, { ...opts, code: 'CONFIG' });
  }
}

export interface LockHolder {
  /** user id (email) of whoever holds the lock */
  user: string;
  host: string;
  pid: number;
  /** ISO 8601 */
  since: string;
  transactionId?: string;
}

export class LockedError extends DsgError {
  readonly holder: LockHolder;
  constructor(holder: LockHolder, opts: DsgErrorOptions = {}) {
    super(
      'LOCKED',
      `repository is locked by ${holder.user} on ${holder.host} (pid ${holder.pid}) since ${holder.since}`,
      {
        recoveryHint:
          opts.recoveryHint ??
          'Wait for the other sync to finish and retry; a lock whose process is gone is cleared automatically.',
        cause: opts.cause,
      },
    );
    this.holder = holder;
  }
}

/** The sync refused because of conflicts (exit code 3). */
export class ConflictError extends DsgError {
  readonly paths: readonly string[];
  constructor(paths: readonly string[], opts: DsgErrorOptions = {}) {
    super(
      'CONFLICT',
      `${paths.length} conflicting path(s): ${paths.slice(0, 5).join(', ')}${paths.length > 5 ? ', …' : ''}`,
      {
        recoveryHint:
          opts.recoveryHint ?? 'Fill in the resolution lines in conflicts.txt, then run `dsg sync --continue`.',
        cause: opts.cause,
      },
    );
    this.paths = paths;
  }
}

/** The repository (or a snapshot, or a file in it) does not exist. */
export class NotFoundError extends DsgError {
  constructor(message: string, opts: DsgErrorOptions = {}) {
    super('NOT_FOUND', message, {
      recoveryHint: opts.recoveryHint ?? 'Check the name; `dsg list-repos` and `dsg log` show what exists.',
      cause: opts.cause,
    });
  }
}

/** Rebuild a typed error from its wire form (agent → client). */
export function errorFromJSON(serialized: SerializedError): DsgError {
  const opts = { recoveryHint: serialized.recoveryHint };
  // a code this build does not know (a newer agent's) is passed on unchanged, as before
  const code = serialized.code as ErrorCode;
  const d = serialized.details ?? {};
  switch (serialized.name) {
    case 'LockedError':
      return new LockedError(d['holder'] as LockHolder, opts);
    case 'ConflictError':
      return new ConflictError((d['paths'] as string[] | undefined) ?? [], opts);
    case 'TransactionCommitError':
      return new TransactionCommitError(
        serialized.message,
        typeof d['transactionId'] === 'string' ? d['transactionId'] : '',
        opts,
      );
    case 'ZfsOperationError':
      return new ZfsOperationError(
        serialized.message,
        { zfsCommand: (d['zfsCommand'] as string[] | undefined) ?? [] },
        opts,
      );
    case 'TransportError':
      return new TransportError(serialized.message, opts);
    case 'ConfigError':
      return new ConfigError(serialized.message, d, opts);
    case 'ValidationError':
      // keep the specific code (e.g. HASH_MISMATCH): callers branch on it
      return new ValidationError(serialized.message, d, { ...opts, code });
    case 'NotFoundError':
      return new NotFoundError(serialized.message, opts);
    default:
      return new DsgError(code, serialized.message, opts);
  }
}

/** Wire form of any error, keeping the details a client needs. */
export function errorToJSON(err: unknown): SerializedError {
  if (err instanceof DsgError) {
    const base = err.toJSON();
    const details: Record<string, unknown> = {};
    if (err instanceof LockedError) details['holder'] = err.holder;
    if (err instanceof ConflictError) details['paths'] = err.paths;
    if (err instanceof TransactionCommitError) details['transactionId'] = err.transactionId;
    if (err instanceof ZfsOperationError) details['zfsCommand'] = err.zfsCommand;
    if (err instanceof ValidationError) Object.assign(details, err.details);
    return Object.keys(details).length ? { ...base, details } : base;
  }
  const message = err instanceof Error ? err.message : String(err);
  return { name: 'Error', code: 'INTERNAL', message, recoveryHint: 'Run again with --debug for details.' };
}
