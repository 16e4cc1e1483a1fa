import { ValidationError } from './errors.js';
import type { SnapshotRef } from './interfaces.js';

/**
 * A snapshot id: `s1`, `s2`, … — the one definition every layer checks
 * against (the wire, the backends, the sync engine, the CLI). N is 1 to
 * 999,999,999: `s0` and leading zeros are not ids, and nine digits keep N
 * an exact small integer and every ZFS name built from it short.
 */
export type SnapshotId = string & { readonly __snapshotId: true };

export const SNAPSHOT_ID_RE = /^s([1-9][0-9]{0,8})$/;
const MAX_N = 999_999_999;

/** N of `sN`, or null when `id` is not a snapshot id. */
export function snapshotNumber(id: unknown): number | null {
  const m = typeof id === 'string' ? SNAPSHOT_ID_RE.exec(id) : null;
  return m ? Number(m[1]) : null;
}

export function isSnapshotId(id: unknown): id is SnapshotId {
  return snapshotNumber(id) !== null;
}

/** `id` as a SnapshotId, or a ValidationError naming the field. */
export function parseSnapshotId(id: unknown, field = 'snapshotId'): SnapshotId {
  if (!isSnapshotId(id)) {
    throw new ValidationError(
      `not a snapshot id: ${JSON.stringify(String(id).slice(0, 40))}`,
      { field },
      {
        recoveryHint: 'Snapshot ids look like s1, s2, …; `dsg log` lists them.',
      },
    );
  }
  return id;
}

/** `sN` for N in 1…999,999,999. */
export function snapshotIdOf(number: number): SnapshotId {
  if (!Number.isInteger(number) || number < 1 || number > MAX_N)
    throw new ValidationError(`no snapshot id has the number ${number}`, { field: 'snapshotId' });
  return `s${number}` as SnapshotId;
}

/** The id after `prev` (null: the first snapshot, s1). */
export function nextSnapshotId(prev: string | null): SnapshotId {
  return prev === null ? snapshotIdOf(1) : snapshotIdOf(snapshotNumber(parseSnapshotId(prev))! + 1);
}

/** Orders snapshot ids by N (s2 before s10); not-ids last. */
export function compareSnapshotIds(a: string, b: string): number {
  const x = snapshotNumber(a);
  const y = snapshotNumber(b);
  if (x === null || y === null) return x === null ? (y === null ? 0 : 1) : -1;
  return x - y;
}

/**
 * A SnapshotRef from a manifest metadata block as JSON holds it
 * (created_at, snapshot_message, snapshot_hash, created_by), for backends
 * that read the history from `.dsg/` files instead of their own records.
 */
export function snapshotRefOf(id: string, metadata: Record<string, unknown>): SnapshotRef {
  const str = (k: string): string | undefined => (typeof metadata[k] === 'string' ? metadata[k] : undefined);
  const ref: SnapshotRef = { snapshotId: id, createdAt: str('created_at') ?? '' };
  const message = str('snapshot_message');
  const hash = str('snapshot_hash');
  const user = str('created_by');
  if (message !== undefined) ref.message = message;
  if (hash !== undefined) ref.manifestHash = hash;
  if (user !== undefined) ref.user = user;
  return ref;
}

/**
 * The metadata block of a manifest's parsed JSON (`{"entries": …,
 * "metadata": {…}}`), or null when `json` has none. The one reader for the
 * packages that may not import @dsg/manifest but must find a head's
 * snapshot_id or snapshot_hash (backends, client recovery); everything else
 * parses the whole manifest with @dsg/manifest.
 */
export function manifestMetadataOf(json: unknown): Record<string, unknown> | null {
  const isRecord = (v: unknown): v is Record<string, unknown> =>
    v !== null && typeof v === 'object' && !Array.isArray(v);
  return isRecord(json) && isRecord(json['metadata']) ? json['metadata'] : null;
}
