import { ValidationError, assertSafeRelativePath, asTransactionId, parseSnapshotId, type LockHolder, type TransactionId } from '@dsg/contracts';
import { ProtocolError } from './frames.js';

/** major.minor; a different major on the other side refuses the session. */
export const PROTOCOL_VERSION = '1.0';

export function majorOf(version: string): number {
  const m = /^(\d+)\.(\d+)$/.exec(version);
  if (!m) throw new ProtocolError(`malformed protocol version ${JSON.stringify(version).slice(0, 40)}`);
  return Number(m[1]);
}

/** Every operation a client may request (README "Messages"). */
export const OPS = [
  'hello',
  'listRepositories',
  'open',
  'lock',
  'unlock',
  'exists',
  'readFile',
  'begin',
  'commit',
  'rollback',
  'writeFile',
  'writeLink',
  'deleteFile',
  'listSnapshots',
  'readSnapshotFile',
  'mountSnapshot',
  'unmountSnapshot',
  'recover',
  'stats',
] as const;
export type Op = (typeof OPS)[number];

const REPO_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/;

/** A repository name: one path component / dataset name component, nothing clever. */
export function assertRepoName(name: unknown): string {
  if (typeof name !== 'string' || !REPO_RE.test(name) || name.includes('..')) {
    throw new ValidationError(`refused repository name ${JSON.stringify(String(name).slice(0, 120))}`, { field: 'repo' }, {
      recoveryHint: 'A repository name is letters, digits, ".", "_" and "-", starting with a letter or digit.',
    });
  }
  return name;
}

/** The wire takes exactly the ids every backend takes (contracts' one rule). */
export function assertSnapshotId(id: unknown): string {
  return parseSnapshotId(id);
}

export function str(msg: Record<string, unknown>, key: string, max = 4096): string {
  const v = msg[key];
  if (typeof v !== 'string' || v.length > max) throw new ProtocolError(`field "${key}" must be a string of at most ${max} characters`);
  return v;
}

export function path(msg: Record<string, unknown>, key = 'path'): string {
  const p = str(msg, key);
  assertSafeRelativePath(p);
  return p;
}

export function tx(msg: Record<string, unknown>): TransactionId {
  const t = str(msg, 'tx', 64);
  try {
    return asTransactionId(t);
  } catch {
    throw new ValidationError(`refused transaction id ${JSON.stringify(t)}`, { field: 'tx' });
  }
}

export function holder(msg: Record<string, unknown>): LockHolder {
  const h = msg['holder'];
  if (typeof h !== 'object' || h === null) throw new ProtocolError('lock needs a holder object');
  const o = h as Record<string, unknown>;
  const pid = o['pid'];
  if (typeof pid !== 'number' || !Number.isInteger(pid) || pid < 0) throw new ProtocolError('holder.pid must be a non-negative integer');
  const out: LockHolder = { user: str(o, 'user', 320), host: str(o, 'host', 255), pid, since: str(o, 'since', 64) };
  if (o['transactionId'] !== undefined) out.transactionId = str(o, 'transactionId', 64);
  return out;
}
