import * as z from 'zod';
import { HEX16 } from './hash.js';
import { isTimestamp } from './timestamp.js';
import { validateLinkTarget, validateName } from './names.js';

export type FileEntry = { type: 'file'; path: string; user: string; filesize: number; mtime: string; hash: string };
export type LinkEntry = { type: 'link'; path: string; user: string; reference: string };
export type ManifestEntry = FileEntry | LinkEntry;

export interface ManifestMetadata {
  manifest_version: string;
  snapshot_id: string;
  created_at: string;
  entry_count: number;
  entries_hash: string;
  created_by: string;
  snapshot_message: string | null;
  snapshot_previous: string | null;
  snapshot_hash: string | null;
  snapshot_notes: string | null;
  project_config: Record<string, unknown> | null;
}

/** Field order of the serialized format (the original's; docs/ARCHITECTURE.md §2). */
export const FILE_FIELDS = ['type', 'path', 'user', 'filesize', 'mtime', 'hash'] as const;
export const LINK_FIELDS = ['type', 'path', 'user', 'reference'] as const;
export const METADATA_FIELDS = [
  'manifest_version',
  'snapshot_id',
  'created_at',
  'entry_count',
  'entries_hash',
  'created_by',
  'snapshot_message',
  'snapshot_previous',
  'snapshot_hash',
  'snapshot_notes',
  'project_config',
] as const;

/** The manifest version we write; the ancestor's format version we are compatible with. */
export const MANIFEST_VERSION = '0.4.4';

/**
 * A manifest: entries in scan order (sorted by path) plus the snapshot
 * metadata. Unknown fields read from a file are kept (on the entry and
 * metadata objects themselves, and in `extra` for top-level keys) and
 * written back after the known ones, so a newer writer's additions survive
 * a rewrite by us.
 */
export class Manifest {
  entries: Map<string, ManifestEntry>;
  metadata: ManifestMetadata | null;
  /** unknown top-level keys, in file order */
  extra: Record<string, unknown>;

  constructor(
    entries?: Iterable<ManifestEntry>,
    metadata: ManifestMetadata | null = null,
    extra: Record<string, unknown> = {},
  ) {
    this.entries = new Map();
    for (const e of entries ?? []) this.entries.set(e.path, e);
    this.metadata = metadata;
    this.extra = extra;
  }

  static empty(): Manifest {
    return new Manifest();
  }

  /** A manifest over `entries` as they are (keys must be the entries' paths): no copy of a large map. */
  static fromMap(
    entries: Map<string, ManifestEntry>,
    metadata: ManifestMetadata | null = null,
    extra: Record<string, unknown> = {},
  ): Manifest {
    const m = new Manifest(undefined, metadata, extra);
    m.entries = entries;
    return m;
  }

  get size(): number {
    return this.entries.size;
  }
}

const safePath = z.string().superRefine((p, ctx) => {
  const why = validateName(p);
  if (why) ctx.addIssue({ code: 'custom', message: `unsafe or refused path: ${why}` });
});

/*
 * Two levels of checking. The SHAPE (JSON types: strings, a non-negative
 * whole filesize, a known `type`) is what a manifest must have to be read at
 * all. The RULES (name rules, link target, timestamp and hash formats) are
 * what this dsg writes by: a manifest written by another tool may hold an
 * entry that breaks them and is still read; parseManifest marks that entry
 * unusable (see unusable.ts) instead of refusing the file.
 */
const fileShape = {
  type: z.literal('file'),
  path: z.string(),
  user: z.string(),
  filesize: z.number().int().nonnegative(),
  mtime: z.string(),
  hash: z.string(),
};
const linkShape = { type: z.literal('link'), path: z.string(), user: z.string(), reference: z.string() };

/** The shape every entry of a readable manifest has (types only, no rules). */
export const entryShapeSchema = z.discriminatedUnion('type', [z.looseObject(fileShape), z.looseObject(linkShape)]);

export const fileEntrySchema = z.looseObject({
  ...fileShape,
  path: safePath,
  mtime: z.string().refine(isTimestamp, 'not an ISO 8601 timestamp with offset'),
  hash: z.string().refine((h) => h === '' || HEX16.test(h), 'not 16 lowercase hex digits'),
});

export const linkEntrySchema = z.looseObject({ ...linkShape, path: safePath }).superRefine((e, ctx) => {
  const why = validateLinkTarget(e.path, e.reference);
  if (why) ctx.addIssue({ code: 'custom', path: ['reference'], message: why });
});

/** An entry that has the shape AND keeps every rule: what this dsg writes. */
export const entrySchema = z.discriminatedUnion('type', [fileEntrySchema, linkEntrySchema]);

/**
 * Exactly what entrySchema accepts, checked by hand: zod's per-object cost
 * was most of the parse time of a 10k-entry manifest (and status parses two
 * or three). `false` means "let zod decide", which also words the error;
 * a test holds the two to the same verdicts.
 */
export function isValidEntryFast(value: unknown): value is ManifestEntry {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const r = value as Record<string, unknown>;
  const path = r['path'];
  if (typeof path !== 'string' || typeof r['user'] !== 'string') return false;
  if (r['type'] === 'file') {
    const size = r['filesize'];
    const mtime = r['mtime'];
    const hash = r['hash'];
    return (
      typeof size === 'number' &&
      Number.isSafeInteger(size) &&
      size >= 0 &&
      typeof hash === 'string' &&
      (hash === '' || HEX16.test(hash)) &&
      typeof mtime === 'string' &&
      isTimestamp(mtime) &&
      !validateName(path)
    );
  }
  if (r['type'] === 'link') {
    const ref = r['reference'];
    return typeof ref === 'string' && !validateName(path) && !validateLinkTarget(path, ref);
  }
  return false;
}

/** Exactly what entryShapeSchema accepts, by hand (the fast path of parseManifest; a test holds the two to the same verdicts). */
export function isEntryShapeFast(value: unknown): value is ManifestEntry {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const r = value as Record<string, unknown>;
  if (typeof r['path'] !== 'string' || typeof r['user'] !== 'string') return false;
  if (r['type'] === 'file') {
    const size = r['filesize'];
    return (
      typeof size === 'number' &&
      Number.isSafeInteger(size) &&
      size >= 0 &&
      typeof r['mtime'] === 'string' &&
      typeof r['hash'] === 'string'
    );
  }
  return r['type'] === 'link' && typeof r['reference'] === 'string';
}

const nullableHash = z.string().regex(HEX16, 'not 16 lowercase hex digits').nullable();

export const metadataSchema = z.looseObject({
  manifest_version: z.string(),
  snapshot_id: z.string(),
  created_at: z.string().refine(isTimestamp, 'not an ISO 8601 timestamp with offset'),
  entry_count: z.number().int().nonnegative(),
  entries_hash: z.string().regex(HEX16, 'not 16 lowercase hex digits'),
  // the original's Optional[str]: null is read (as '') and written back as null (format.ts)
  created_by: z.string().nullable(),
  snapshot_message: z.string().nullable().default(null),
  snapshot_previous: z.string().nullable().default(null),
  snapshot_hash: nullableHash.default(null),
  snapshot_notes: z.string().nullable().default(null),
  project_config: z.record(z.string(), z.unknown()).nullable().default(null),
});

export const manifestSchema = z.looseObject({
  entries: z.record(z.string(), entryShapeSchema),
  metadata: metadataSchema.nullable().optional(),
});
