import { DSG_DIR } from './dsg-layout.js';
import { ValidationError } from './errors.js';
import { EXPECTED_HASH_RE } from './verified-write.js';

/**
 * How long parked content (verified uploads or downloads of an interrupted
 * transaction, kept for the next one to resume from) is kept when nothing
 * claims it: long enough to resume after a weekend, short enough that an
 * abandoned transfer does not hold disk space for good.
 */
export const PARKED_TTL_MS = 72 * 3600 * 1000;

/** The file name of parked content: its lowercase hash, which must be a hash (it names a file). */
export function parkedName(hash: string): string {
  const name = typeof hash === 'string' ? hash.toLowerCase() : '';
  if (!EXPECTED_HASH_RE.test(name))
    throw new ValidationError(`parked content name ${JSON.stringify(hash)} is not a hash`);
  return name;
}

/**
 * Whether an upload to `relPath` is parked: data, not the repository's own
 * `.dsg/` metadata (each snapshot writes its own, so no later run reuses it,
 * and it would only sit there until it expires).
 */
export function parksUpload(relPath: string): boolean {
  return relPath !== DSG_DIR && !relPath.startsWith(`${DSG_DIR}/`);
}

/** Whether parked content last touched (ctime: linking or writing it, never the file's own mtime) at `changedMs` has expired. */
export function parkedExpired(changedMs: number, now = Date.now(), ttlMs = PARKED_TTL_MS): boolean {
  return now - changedMs > ttlMs;
}
