import { readFile } from 'node:fs/promises';
import { DsgError, ValidationError, writeFileAtomic } from '@dsg/contracts';
import type { z } from 'zod';
import {
  OrderedObject,
  RawJson,
  compactPairs,
  findDuplicateKey,
  hasDuplicateKey,
  pretty,
  type Ordered,
} from './json.js';
import {
  FILE_FIELDS,
  LINK_FIELDS,
  METADATA_FIELDS,
  Manifest,
  isEntryShapeFast,
  manifestSchema,
  metadataSchema,
  type ManifestEntry,
  type ManifestMetadata,
} from './model.js';
import { shorten } from './names.js';
import { entryProblem, markUnusable } from './unusable.js';

/** A key longer than this is shortened in messages (a hostile manifest may hold a 10 MB path). */
const MAX_KEY_SHOWN = 200;

/** Render a zod/JSON path like `entries["input/a.csv"].hash`; very long keys are shortened with their length. */
export function formatField(p: readonly PropertyKey[]): string {
  let out = '';
  for (const k of p) {
    if (typeof k === 'number') out += `[${k}]`;
    else {
      const s = shorten(String(k), MAX_KEY_SHOWN);
      out += /^[A-Za-z_][A-Za-z0-9_]*$/.test(s) ? (out ? '.' : '') + s : `[${JSON.stringify(s)}]`;
    }
  }
  return out || '(root)';
}

function invalid(source: string | undefined, field: string, why: string, cause?: unknown): ValidationError {
  const where = source ?? 'manifest';
  return new ValidationError(
    `${where}: invalid manifest at ${field}: ${why}`,
    source === undefined ? { field } : { file: source, field },
    {
      recoveryHint:
        'The manifest is corrupt or was written by an incompatible tool; restore it from the repository (dsg clone or sync) or from .dsg/archive.',
      cause,
    },
  );
}

/** Parse JSON text, refusing duplicate keys; errors name `source`. */
export function parseJsonStrict(text: string | Uint8Array, source: string | undefined, what: string): unknown {
  let s: string;
  try {
    s = typeof text === 'string' ? text : new TextDecoder('utf-8', { fatal: true }).decode(text);
  } catch (e) {
    throw invalid(source, '(root)', `${what} is not valid UTF-8`, e);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(s);
  } catch (e) {
    throw invalid(source, '(root)', `${what} is not valid JSON (${(e as Error).message})`, e);
  }
  // counting finds whether there is one; the slower scan, only then, which one
  const dup = hasDuplicateKey(s, raw) ? findDuplicateKey(s) : null;
  if (dup) throw invalid(source, formatField(dup), 'duplicate key');
  return raw;
}

function firstIssue(source: string | undefined, err: z.ZodError): ValidationError {
  const issue = err.issues[0];
  // A discriminated-union failure inside an entry reports the entry; point at `type`.
  const p = issue?.path ?? [];
  return invalid(source, formatField(p), issue?.message ?? 'schema mismatch', err);
}

/**
 * Parse a manifest (last-sync.json, an archive entry). Refused, as a
 * ValidationError{file, field}: corrupt JSON or UTF-8, a duplicated key, a
 * shape mismatch (wrong JSON types, unknown entry type), a key that differs
 * from its entry's path, an entry_count that does not match. An entry of the
 * right shape that breaks a rule this dsg writes by (name, link target,
 * mtime or hash format) is kept as read and marked unusable
 * (`unusableReason`): the rest of the manifest stays usable.
 */
export function parseManifest(text: string | Uint8Array, source?: string): Manifest {
  const raw = parseJsonStrict(text, source, 'manifest');
  const data = fastManifest(raw) ?? slowManifest(raw, source);
  const entries = new Map<string, ManifestEntry>();
  // `user` and `type` repeat across entries (one user wrote most of them):
  // one string each instead of one per entry (JSON.parse makes every value anew).
  const shared = new Map<string, string>();
  const one = (v: string): string => {
    const s = shared.get(v);
    if (s !== undefined) return s;
    if (shared.size < MAX_SHARED) shared.set(v, v);
    return v;
  };
  const all = data.entries;
  for (const key in all) {
    const e = all[key]!;
    if (e.path !== key)
      throw invalid(
        source,
        `${formatField(['entries', key])}.path`,
        `path ${JSON.stringify(shorten(e.path, MAX_KEY_SHOWN))} differs from its key`,
      );
    e.path = key;
    e.user = one(e.user);
    e.type = e.type === 'file' ? 'file' : 'link';
    const why = entryProblem(e);
    if (why) markUnusable(e, why);
    entries.set(key, e);
  }
  const metadata = (data.metadata ?? null) as ManifestMetadata | null;
  if (metadata) adoptMetadata(metadata);
  if (metadata && metadata.entry_count !== entries.size) {
    throw invalid(source, 'metadata.entry_count', `says ${metadata.entry_count} but there are ${entries.size} entries`);
  }
  const extra: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(data)) if (k !== 'entries' && k !== 'metadata') extra[k] = v;
  const m = Manifest.fromMap(entries, metadata, extra);
  // Remember whether the file had a `metadata` key at all, so a round trip keeps it absent.
  if (!('metadata' in (raw as object))) noMetadataKey.add(m);
  return m;
}

/** How many distinct `user` values a parse shares (a hostile manifest could make every one differ). */
const MAX_SHARED = 1024;

/**
 * Metadata blocks whose `created_by` was null in the file (the original's
 * `Optional[str]`): the model holds '' (every reader expects a string) and
 * the serializers write null back, so the block round-trips byte for byte.
 */
const nullCreatedBy = new WeakSet<object>();

/** Take a metadata block as parsed by metadataSchema into the model (created_by null → ''). */
export function adoptMetadata(md: ManifestMetadata): ManifestMetadata {
  if ((md.created_by as string | null) === null) {
    md.created_by = '';
    nullCreatedBy.add(md);
  }
  return md;
}

/** A metadata block's fields in the format's order, unknown ones after; `null` for absent ones (and for a created_by read as null). */
export function metadataPairs(md: ManifestMetadata): Ordered {
  const pairs = orderedPairs(md, METADATA_FIELDS);
  if (!nullCreatedBy.has(md) || md.created_by !== '') return pairs;
  return pairs.map(([k, v]) => (k === 'created_by' ? [k, null] : [k, v]));
}

const noMetadataKey = new WeakSet<Manifest>();

type ParsedManifest = z.infer<typeof manifestSchema>;

function slowManifest(raw: unknown, source: string | undefined): ParsedManifest {
  const r = manifestSchema.safeParse(raw);
  if (!r.success) throw firstIssue(source, r.error);
  return r.data;
}

const optionalMetadata = metadataSchema.nullable().optional();

/**
 * manifestSchema's result without running zod on every entry: entries that
 * pass isEntryShapeFast are taken as they are (JSON.parse made them fresh);
 * the one metadata object still goes through zod (defaults). Anything
 * unusual returns undefined, and the zod path decides and words the error.
 */
function fastManifest(raw: unknown): ParsedManifest | undefined {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return undefined;
  const rec = raw as Record<string, unknown>;
  const entries = rec['entries'];
  if (typeof entries !== 'object' || entries === null || Array.isArray(entries)) return undefined;
  for (const e of Object.values(entries)) if (!isEntryShapeFast(e)) return undefined;
  const md = optionalMetadata.safeParse(rec['metadata']);
  if (!md.success) return undefined;
  const out: Record<string, unknown> = { ...rec };
  if ('metadata' in rec) out['metadata'] = md.data;
  return out as ParsedManifest;
}

/** Known fields in the format's order, then any unknown fields in their original order. */
function orderedPairs(o: object, known: readonly string[]): Ordered {
  const rec = o as Record<string, unknown>;
  const pairs: [string, unknown][] = [];
  for (const k of known) pairs.push([k, rec[k] ?? null]);
  for (const [k, v] of Object.entries(rec)) if (!known.includes(k)) pairs.push([k, v]);
  return pairs;
}

export function entryPairs(e: ManifestEntry, withUnknown = true): Ordered {
  const known = e.type === 'file' ? FILE_FIELDS : LINK_FIELDS;
  if (!withUnknown) return known.map((k) => [k, (e as Record<string, unknown>)[k]] as const);
  return orderedPairs(e, known);
}

const q = JSON.stringify;

/** The compact JSON of one entry as hashed into entries_hash (known fields only). */
export function compactEntry(e: ManifestEntry): string {
  // Direct templates: this runs once per entry per hash (100k-entry manifests).
  // Same bytes as compactPairs(entryPairs(e, false)) — a test checks it.
  if (e.type === 'file') {
    return `{"type":"file","path":${q(e.path)},"user":${q(e.user)},"filesize":${q(e.filesize)},"mtime":${q(e.mtime)},"hash":${q(e.hash)}}`;
  }
  return `{"type":"link","path":${q(e.path)},"user":${q(e.user)},"reference":${q(e.reference)}}`;
}

/** Slow path, also the reference the fast paths are tested against. */
export function compactEntryReference(e: ManifestEntry): string {
  return compactPairs(entryPairs(e, false));
}

/** One entry at the indentation of the entries object (4 spaces), fast path for entries without unknown fields. */
function prettyEntry(e: ManifestEntry): string {
  const n = Object.keys(e).length;
  if (e.type === 'file' && n === FILE_FIELDS.length) {
    return `{\n      "type": "file",\n      "path": ${q(e.path)},\n      "user": ${q(e.user)},\n      "filesize": ${q(e.filesize)},\n      "mtime": ${q(e.mtime)},\n      "hash": ${q(e.hash)}\n    }`;
  }
  if (e.type === 'link' && n === LINK_FIELDS.length) {
    return `{\n      "type": "link",\n      "path": ${q(e.path)},\n      "user": ${q(e.user)},\n      "reference": ${q(e.reference)}\n    }`;
  }
  return pretty(new OrderedObject(entryPairs(e)), '    ');
}

/** Characters per piece of manifestPieces: big enough to be cheap, small enough to stay out of the way. */
const PIECE = 64 * 1024;

/**
 * The serialized manifest as consecutive pieces of about PIECE characters.
 * Why pieces: one string of a 100k-entry manifest is built from ~1.5 million
 * cons strings first (70 MB beside its 23 MB of text); pieces keep at most
 * PIECE characters of text in flight.
 */
function* manifestPieces(m: Manifest): Generator<string> {
  // Everything but the entries through pretty(); NUL cannot occur in its output (JSON escapes it).
  const top: [string, unknown][] = [['entries', new RawJson('\u0000')]];
  if (m.metadata || !noMetadataKey.has(m)) {
    top.push(['metadata', m.metadata ? new OrderedObject(metadataPairs(m.metadata)) : null]);
  }
  for (const [k, v] of Object.entries(m.extra)) top.push([k, v]);
  const frame = pretty(new OrderedObject(top));
  const at = frame.indexOf('\u0000');
  const head = frame.slice(0, at);
  const tail = frame.slice(at + 1);
  if (m.entries.size === 0) {
    yield `${head}{}${tail}`;
    return;
  }
  let piece = `${head}{\n`;
  let first = true;
  for (const [k, e] of m.entries) {
    piece += `${first ? '' : ',\n'}    ${q(k)}: ${prettyEntry(e)}`;
    first = false;
    if (piece.length >= PIECE) {
      yield piece;
      piece = '';
    }
  }
  yield `${piece}\n  }${tail}`;
}

/** The manifest in the original's byte-exact layout (2-space JSON, its field order; docs/ARCHITECTURE.md §2). */
export function serializeManifest(m: Manifest): string {
  return [...manifestPieces(m)].join('');
}

/**
 * serializeManifest's UTF-8 bytes, written straight into one buffer of
 * exactly their size: no manifest-sized string, no second copy. The pieces
 * are made twice (once to measure, once to write); that costs less than the
 * copy it saves is large.
 */
export function serializeManifestBytes(m: Manifest): Buffer {
  let size = 0;
  for (const p of manifestPieces(m)) size += Buffer.byteLength(p, 'utf8');
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  for (const p of manifestPieces(m)) at += out.write(p, at, 'utf8');
  if (at !== size) throw new Error(`manifest changed while it was serialized (${at} of ${size} bytes)`);
  return out;
}

/**
 * serializeManifest's UTF-8 bytes in chunks of about 64 KiB, made as they are
 * consumed: a manifest written to a file or a repository this way is never
 * whole in memory (100k entries: 23 MB, and each copy a writer made of it).
 */
export function* serializeManifestChunks(m: Manifest): Generator<Buffer> {
  for (const p of manifestPieces(m)) yield Buffer.from(p, 'utf8');
}

/** A manifest file's bytes; null only when it does not exist. Unreadable → DsgError IO. */
export async function readManifestBytes(file: string): Promise<Buffer | null> {
  try {
    return await readFile(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new DsgError('IO', `cannot read manifest ${file}: ${(e as Error).message}`, {
      cause: e,
      recoveryHint: 'Check that the path is a readable file (permissions, not a directory).',
    });
  }
}

/** Read a manifest file; null only when it does not exist. Anything else broken → ValidationError. */
export async function readManifestFile(file: string): Promise<Manifest | null> {
  const bytes = await readManifestBytes(file);
  return bytes && parseManifest(bytes, file);
}

/** The one atomic write (@dsg/contracts), re-exported for this package's callers. */
export { writeFileAtomic };

export async function writeManifestFile(file: string, m: Manifest): Promise<void> {
  await writeFileAtomic(file, serializeManifestChunks(m));
}
