/**
 * Lenient reading: one entry this dsg cannot use never makes a manifest
 * unreadable. The original (HRDAG/dsg 0.4.4) records, without complaint,
 * names with a backslash, links that climb out by one level, mtimes with a
 * local-mean-time offset (`1879-12-31T00:00:00-07:52:58`) or none at all.
 * parseManifest keeps such an entry exactly as read — it stays in
 * `Manifest.entries`, so the file re-serializes and hashes byte for byte —
 * and marks it here with the reason. The sync engine's single write gate
 * (coordinator `partitionByScope`) holds every marked entry back: never
 * downloaded, never deleted, carried into the next snapshot unchanged.
 *
 * The mark lives on the entry object (a WeakMap), not on the Manifest, so it
 * survives every re-wrapping of the same entries into a new Manifest
 * (filters, views without the config entry, the merged next snapshot).
 */
import { shorten, validateLinkTarget, validateName } from './names.js';
import { HEX16 } from './hash.js';
import type { ManifestEntry } from './model.js';
import { isTimestamp } from './timestamp.js';

/** the longest path the confinement gate (contracts assertSafeRelativePath) accepts */
const MAX_PATH = 4096;

const marks = new WeakMap<object, string>();

/**
 * The version of the rules entryProblem applies (names, link targets,
 * mtimes, hashes): bump it whenever they change, so verdicts kept on disk
 * (the last sync's mirror) are judged again.
 */
export const ENTRY_RULES_VERSION = 1;

/**
 * Why `entry` (which has the entry shape: right JSON types) breaks a rule this
 * dsg writes by — its path, link target, mtime or hash — or null. The first
 * problem found, worded for a `held back` report.
 */
export function entryProblem(entry: ManifestEntry): string | null {
  const p = entry.path;
  const name = validateName(p) ?? (p.length > MAX_PATH ? `path longer than ${MAX_PATH} characters` : null);
  if (name) return `refused name: ${name}`;
  if (entry.type === 'link') {
    const why = validateLinkTarget(p, entry.reference);
    return why ? `refused link target ${JSON.stringify(shorten(entry.reference, 100))}: ${why}` : null;
  }
  if (!isTimestamp(entry.mtime))
    return `mtime ${JSON.stringify(shorten(entry.mtime, 60))} is not an ISO 8601 timestamp with a whole-minute UTC offset`;
  if (entry.hash !== '' && !HEX16.test(entry.hash))
    return `hash ${JSON.stringify(shorten(entry.hash, 40))} is not 16 lowercase hex digits`;
  return null;
}

/** parseManifest's mark on an entry it kept but this dsg cannot use. */
export function markUnusable(e: ManifestEntry, reason: string): void {
  marks.set(e, reason);
}

/**
 * Why an entry read from a manifest file cannot be used by this dsg
 * (written, uploaded, downloaded, deleted, compared), or null. Non-null only
 * for the very entry objects parseManifest returned (copies are not marked).
 */
export function unusableReason(entry: ManifestEntry): string | null {
  return marks.get(entry) ?? null;
}
