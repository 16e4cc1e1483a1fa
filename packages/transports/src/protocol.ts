import { isAbsolute, normalize } from 'node:path';
import {
  EXPECTED_HASH_RE,
  ValidationError,
  assertSafeLinkTarget,
  assertSafeRelativePath,
  asTransactionId,
  parseSnapshotId,
  validateRepositoryName,
  type BatchFile,
  type SizedPath,
  type ExpectedFile,
  type LockHolder,
  type SnapshotInfo,
  type TransactionId,
} from '@dsg/contracts';
import { ProtocolError } from './frames.js';

/**
 * major.minor; a different major on the other side refuses the session. A
 * minor adds operations a client uses only when the agent's minor has them:
 * 1.1 — `writeFiles`/`readFiles` (a batch of files in one upload/download);
 * 1.2 — `fileDigest` (a head file's SHA-256 and size, without its bytes);
 * 1.3 — `detectRepository` (what a repository path is: zfs dataset, posix, neither).
 */
export const PROTOCOL_VERSION = '1.3';

/** The minor of a version majorOf accepted (0 for a malformed one: nothing beyond 1.0 is assumed). */
export function minorOf(version: string): number {
  const m = /^\d+\.(\d+)$/.exec(version);
  return m ? Number(m[1]) : 0;
}

/** The most files one `writeFiles` batch may carry (its request must also fit in one frame). */
export const MAX_BATCH_FILES = 1024;

export function majorOf(version: string): number {
  const m = /^(\d+)\.(\d+)$/.exec(version);
  if (!m) throw new ProtocolError(`malformed protocol version ${JSON.stringify(version).slice(0, 40)}`);
  return Number(m[1]);
}

/** A request's fields as they arrived (the parsed JSON object, `op` included). */
export type Fields = Record<string, unknown>;

// The field parsers of the op table (ops.ts). A malformed field (wrong type, too long, missing
// object) is a ProtocolError; a well-formed value the rules refuse is a ValidationError.

/** A repository name: contracts' one rule (one path component / dataset name component). */
export function assertRepoName(name: unknown): string {
  return validateRepositoryName(name);
}

/** The wire takes exactly the ids every backend takes (contracts' one rule). */
export function assertSnapshotId(id: unknown): string {
  return parseSnapshotId(id);
}

export function str(msg: Fields, key: string, max = 4096): string {
  const v = msg[key];
  if (typeof v !== 'string' || v.length > max)
    throw new ProtocolError(`field "${key}" must be a string of at most ${max} characters`);
  return v;
}

export function path(msg: Fields, key = 'path'): string {
  const p = str(msg, key);
  assertSafeRelativePath(p);
  return p;
}

export function tx(msg: Fields): TransactionId {
  const t = str(msg, 'tx', 64);
  try {
    return asTransactionId(t);
  } catch {
    throw new ValidationError(`refused transaction id ${JSON.stringify(t)}`, { field: 'tx' });
  }
}

/** A link's target: lexically inside the tree (contracts' writer rule); the agent checks it on disk later. */
export function linkTarget(msg: Fields, linkPath: string): string {
  const target = str(msg, 'target');
  assertSafeLinkTarget(linkPath, target);
  return target;
}

export function holder(msg: Fields): LockHolder {
  const h = msg['holder'];
  if (typeof h !== 'object' || h === null) throw new ProtocolError('lock needs a holder object');
  const o = h as Fields;
  const pid = o['pid'];
  if (typeof pid !== 'number' || !Number.isInteger(pid) || pid < 0)
    throw new ProtocolError('holder.pid must be a non-negative integer');
  const out: LockHolder = { user: str(o, 'user', 320), host: str(o, 'host', 255), pid, since: str(o, 'since', 64) };
  if (o['transactionId'] !== undefined) out.transactionId = str(o, 'transactionId', 64);
  return out;
}

export function expectedFile(value: unknown): ExpectedFile {
  if (typeof value !== 'object' || value === null) throw new ProtocolError('writeFile needs "expected"');
  const o = value as Fields;
  const hash = o['hash'];
  if (typeof hash !== 'string' || !EXPECTED_HASH_RE.test(hash))
    throw new ValidationError('expected.hash must be lowercase hex', { field: 'expected.hash' });
  const out: ExpectedFile = { hash };
  if (o['size'] !== undefined) {
    if (typeof o['size'] !== 'number' || !Number.isSafeInteger(o['size']) || o['size'] < 0)
      throw new ValidationError('expected.size must be a non-negative integer', { field: 'expected.size' });
    out.size = o['size'];
  }
  if (o['mtime'] !== undefined) {
    if (typeof o['mtime'] !== 'string' || Number.isNaN(Date.parse(o['mtime'])))
      throw new ValidationError('expected.mtime must be an ISO 8601 time', { field: 'expected.mtime' });
    out.mtime = o['mtime'];
  }
  return out;
}

/** A `writeFiles` batch: 1..MAX_BATCH_FILES distinct, checked paths, each with its size (where the next file begins). */
export function batchFiles(value: unknown): BatchFile[] {
  if (!Array.isArray(value) || value.length === 0 || value.length > MAX_BATCH_FILES)
    throw new ProtocolError(`writeFiles needs "files": 1 to ${MAX_BATCH_FILES} entries`);
  const seen = new Set<string>();
  return value.map((v: unknown) => {
    if (typeof v !== 'object' || v === null) throw new ProtocolError('each of "files" must be an object');
    const p = path(v as Fields);
    if (seen.has(p)) throw new ValidationError(`the batch names ${JSON.stringify(p)} twice`, { path: p });
    seen.add(p);
    const expected = expectedFile((v as Fields)['expected']);
    if (expected.size === undefined)
      throw new ValidationError(`expected.size of ${JSON.stringify(p)} is required in a batch`, {
        field: 'expected.size',
      });
    return { path: p, expected: { ...expected, size: expected.size } };
  });
}

/** A `readFiles` batch: 1..MAX_BATCH_FILES checked paths, each with a non-negative integer size. */
export function sizedPaths(value: unknown): SizedPath[] {
  if (!Array.isArray(value) || value.length === 0 || value.length > MAX_BATCH_FILES)
    throw new ProtocolError(`readFiles needs "files": 1 to ${MAX_BATCH_FILES} entries`);
  return value.map((v: unknown) => {
    if (typeof v !== 'object' || v === null) throw new ProtocolError('each of "files" must be an object');
    const size = (v as Fields)['size'];
    if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0)
      throw new ValidationError('size must be a non-negative integer', { field: 'size' });
    return { path: path(v as Fields), size };
  });
}

export function snapshotInfo(value: unknown): SnapshotInfo {
  if (typeof value !== 'object' || value === null) throw new ProtocolError('commit needs "snapshot"');
  const o = value as Fields;
  return {
    snapshotId: assertSnapshotId(o['snapshotId']),
    message: str(o, 'message', 1 << 16),
    manifestHash: str(o, 'manifestHash', 200),
    user: str(o, 'user', 320),
    createdAt: str(o, 'createdAt', 64),
  };
}

/** An agent-side path to unmount: absolute and normalized (the backend then removes only its own views). */
export function mountPath(msg: Fields): string {
  const at = str(msg, 'at');
  if (!isAbsolute(at) || normalize(at) !== at || at.includes('\0') || at === '/') {
    throw new ValidationError(
      `refused to unmount ${JSON.stringify(at.slice(0, 200))}: not a normalized absolute path`,
      { field: 'at' },
    );
  }
  return at;
}
