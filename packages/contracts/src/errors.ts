/**
 * The error hierarchy. Every error a user can cause carries a `code` (stable,
 * for --json and tests) and a `recoveryHint` (one line: what to do next).
 */
export interface DsgErrorOptions {
  recoveryHint?: string;
  cause?: unknown;
}

export class DsgError extends Error {
  readonly code: string;
  readonly recoveryHint: string;

  constructor(code: string, message: string, opts: DsgErrorOptions = {}) {
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
  constructor(message: string, details: ValidationDetails = {}, opts: DsgErrorOptions & { code?: string } = {}) {
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
    super('LOCKED', `repository is locked by ${holder.user} on ${holder.host} (pid ${holder.pid}) since ${holder.since}`, {
      recoveryHint:
        opts.recoveryHint ??
        'Wait for the other sync to finish and retry; a lock whose process is gone is cleared automatically.',
      cause: opts.cause,
    });
    this.holder = holder;
  }
}

/** The sync refused because of conflicts (exit code 3). */
export class ConflictError extends DsgError {
  readonly paths: readonly string[];
  constructor(paths: readonly string[], opts: DsgErrorOptions = {}) {
    super('CONFLICT', `${paths.length} conflicting path(s): ${paths.slice(0, 5).join(', ')}${paths.length > 5 ? ', …' : ''}`, {
      recoveryHint: opts.recoveryHint ?? 'Fill in the resolution lines in conflicts.txt, then run `dsg sync --continue`.',
      cause: opts.cause,
    });
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
export function errorFromJSON(e: SerializedError): DsgError {
  const opts = { recoveryHint: e.recoveryHint };
  const d = e.details ?? {};
  switch (e.name) {
    case 'LockedError':
      return new LockedError(d['holder'] as LockHolder, opts);
    case 'ConflictError':
      return new ConflictError((d['paths'] as string[] | undefined) ?? [], opts);
    case 'TransactionCommitError':
      return new TransactionCommitError(e.message, typeof d['transactionId'] === 'string' ? d['transactionId'] : '', opts);
    case 'ZfsOperationError':
      return new ZfsOperationError(e.message, { zfsCommand: (d['zfsCommand'] as string[] | undefined) ?? [] }, opts);
    case 'TransportError':
      return new TransportError(e.message, opts);
    case 'ConfigError':
      return new ConfigError(e.message, d, opts);
    case 'ValidationError':
      // keep the specific code (e.g. HASH_MISMATCH): callers branch on it
      return new ValidationError(e.message, d, { ...opts, code: e.code });
    case 'NotFoundError':
      return new NotFoundError(e.message, opts);
    default:
      return new DsgError(e.code, e.message, opts);
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
