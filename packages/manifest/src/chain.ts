import { ValidationError } from '@dsg/contracts';
import { createXxh3Hasher } from './hash.js';
import { validateLinkTarget, validateName } from './names.js';
import { compactEntry } from './format.js';
import { compactSorted } from './json.js';
import { MANIFEST_VERSION, Manifest, type ManifestEntry, type ManifestMetadata } from './model.js';
import { comparePaths } from './order.js';
import { formatTimestamp } from './timestamp.js';
import { unusableReason } from './unusable.js';

const utf8 = (s: string): Uint8Array => Buffer.from(s, 'utf8');

/** xxh3-64 over the compact JSON of every entry, in order (the manifest's `entries_hash`). */
export function entriesHash(entries: Iterable<ManifestEntry>): string {
  // One native update per ~64 KiB instead of per entry: the stream hash is
  // independent of how its input is chunked.
  const h = createXxh3Hasher();
  let pending: string[] = [];
  let size = 0;
  for (const e of entries) {
    const s = compactEntry(e);
    pending.push(s);
    size += s.length;
    if (size >= 65536) {
      h.update(utf8(pending.join('')));
      pending = [];
      size = 0;
    }
  }
  if (pending.length) h.update(utf8(pending.join('')));
  return h.digest();
}

/**
 * xxh3-64 over entries_hash, the message, the project config (sorted-key
 * compact JSON, only when non-empty) and the previous snapshot_hash.
 */
export function snapshotHash(parts: {
  entriesHash: string;
  message: string;
  projectConfig: Record<string, unknown> | null;
  previousHash: string | null;
}): string {
  const h = createXxh3Hasher();
  h.update(utf8(parts.entriesHash));
  h.update(utf8(parts.message));
  if (parts.projectConfig && Object.keys(parts.projectConfig).length > 0)
    h.update(utf8(compactSorted(parts.projectConfig)));
  if (parts.previousHash) h.update(utf8(parts.previousHash));
  return h.digest();
}

/**
 * A new snapshot's manifest: entries sorted by path, metadata chained to
 * `previous`. Every entry must keep the rules this dsg writes by, except an
 * entry parseManifest marked unusable (`unusableReason`): that one is a
 * repository entry held back and carried as it was read, field for field.
 */
export function buildSnapshot(
  entries: Iterable<ManifestEntry>,
  options: {
    snapshotId: string;
    previous: ManifestMetadata | null;
    message: string;
    user: string;
    createdAt: Date;
    projectConfig: Record<string, unknown> | null;
    notes?: string;
    timeZone?: string;
  },
): Manifest {
  const sorted = [...entries].sort((a, b) => comparePaths(a.path, b.path));
  // What goes into a snapshot obeys the same rules as what is read from one.
  for (const [i, e] of sorted.entries()) {
    const why =
      unusableReason(e) !== null
        ? null
        : (validateName(e.path) ?? (e.type === 'link' ? validateLinkTarget(e.path, e.reference) : null));
    if (why)
      throw new ValidationError(`refused entry ${JSON.stringify(e.path)}: ${why}`, {
        field: `entries[${JSON.stringify(e.path)}]`,
        path: e.path,
      });
    if (i > 0 && sorted[i - 1]?.path === e.path) {
      throw new ValidationError(`duplicate entry ${JSON.stringify(e.path)}`, {
        field: `entries[${JSON.stringify(e.path)}]`,
        path: e.path,
      });
    }
  }
  const eh = entriesHash(sorted);
  const metadata: ManifestMetadata = {
    manifest_version: MANIFEST_VERSION,
    snapshot_id: options.snapshotId,
    created_at: formatTimestamp(options.createdAt, options.timeZone),
    entry_count: sorted.length,
    entries_hash: eh,
    created_by: options.user,
    snapshot_message: options.message,
    snapshot_previous: options.previous?.snapshot_id ?? null,
    snapshot_hash: snapshotHash({
      entriesHash: eh,
      message: options.message,
      projectConfig: options.projectConfig,
      previousHash: options.previous?.snapshot_hash ?? null,
    }),
    snapshot_notes: options.notes ?? 'sync',
    project_config: options.projectConfig,
  };
  return new Manifest(sorted, metadata);
}

/**
 * Check a chain of snapshot manifests, oldest first: each links to the one
 * before it, its entries hash to its entries_hash, and its snapshot_hash
 * recomputes. Reports the first break.
 */
export function validateChain(manifests: Manifest[]): { ok: true } | { ok: false; snapshotId: string; reason: string } {
  let prev: ManifestMetadata | null = null;
  for (const [i, m] of manifests.entries()) {
    const md = m.metadata;
    if (!md) return { ok: false, snapshotId: `#${i + 1}`, reason: 'manifest has no metadata' };
    const id = md.snapshot_id;
    const expectedPrev = prev?.snapshot_id ?? null;
    if (md.snapshot_previous !== expectedPrev) {
      return {
        ok: false,
        snapshotId: id,
        reason:
          expectedPrev === null
            ? `first snapshot names a previous snapshot (${md.snapshot_previous ?? ''}): a link is missing or the order is wrong`
            : `snapshot_previous is ${JSON.stringify(md.snapshot_previous)}, expected ${JSON.stringify(expectedPrev)}: missing link or reordered snapshot`,
      };
    }
    if (md.entry_count !== m.entries.size) {
      return { ok: false, snapshotId: id, reason: `entry_count ${md.entry_count} but ${m.entries.size} entries` };
    }
    const eh = entriesHash(m.entries.values());
    if (eh !== md.entries_hash) {
      return {
        ok: false,
        snapshotId: id,
        reason: `entries_hash mismatch (recorded ${md.entries_hash}, entries hash to ${eh}): an entry was changed`,
      };
    }
    const sh = snapshotHash({
      entriesHash: eh,
      message: md.snapshot_message ?? '',
      projectConfig: md.project_config,
      previousHash: prev?.snapshot_hash ?? null,
    });
    if (sh !== md.snapshot_hash) {
      return {
        ok: false,
        snapshotId: id,
        reason: `snapshot_hash mismatch (recorded ${md.snapshot_hash ?? 'null'}, recomputed ${sh})`,
      };
    }
    prev = md;
  }
  return { ok: true };
}
