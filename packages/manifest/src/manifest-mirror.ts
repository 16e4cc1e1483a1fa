/**
 * A working copy's last sync (`.dsg/last-sync.json`) read without parsing its
 * JSON each time: a binary mirror of the parsed manifest, bound to the exact
 * bytes it was made from by their xxh3-128. JSON.parse and the per-entry
 * checks of a 100k-entry manifest (23 MB) took most of a warm `dsg status`
 * (0.6 s of CPU of 1.7 s); decoding the mirror builds the same entries from
 * length-prefixed strings. Like git's index, it is derived, local data: a
 * missing, stale, truncated or corrupt mirror is ignored (the JSON is parsed
 * and the mirror rewritten), never trusted in part. Only manifests that
 * round-trip through the mirror exactly get one: every entry usable and
 * without unknown fields, a metadata block present with a non-empty
 * `created_by` (the cases parseManifest records out of band).
 */
import { readFile } from 'node:fs/promises';
import { xxh3 } from '@node-rs/xxhash';
import { writeFileAtomic } from '@dsg/contracts';
import { parseManifest, readManifestBytes } from './format.js';
import { FILE_FIELDS, LINK_FIELDS, Manifest, type ManifestEntry, type ManifestMetadata } from './model.js';
import { unusableReason } from './unusable.js';

const MAGIC = Buffer.from('dsgmirr\n', 'latin1');
const VERSION = 1;
/** magic, u32 version, u32 entries, 32 hex digits of the source's xxh3-128, u32 body length, u64 body xxh3-64 */
const HEADER = MAGIC.length + 4 + 4 + 32 + 4 + 8;

const FILE = 0;
const LINK = 1;

const digestOf = (bytes: Uint8Array): string => xxh3.xxh128(bytes).toString(16).padStart(32, '0');

/** Whether a parsed manifest is one the mirror reproduces exactly. */
function mirrorable(m: Manifest): boolean {
  if (!m.metadata || !m.metadata.created_by) return false;
  for (const e of m.entries.values()) {
    if (unusableReason(e) !== null) return false;
    if (Object.keys(e).length !== (e.type === 'file' ? FILE_FIELDS.length : LINK_FIELDS.length)) return false;
  }
  return true;
}

/** The mirror of `m`, parsed from bytes whose xxh3-128 is `digest`. */
export function encodeMirror(m: Manifest, digest: string): Buffer {
  const users = new Map<string, number>();
  const parts: Buffer[] = [];
  const u32 = (n: number): void => {
    const b = Buffer.allocUnsafe(4);
    b.writeUInt32LE(n, 0);
    parts.push(b);
  };
  const str = (s: string): void => {
    const b = Buffer.from(s, 'utf8');
    u32(b.length);
    parts.push(b);
  };
  str(JSON.stringify({ metadata: m.metadata, extra: m.extra }));
  for (const e of m.entries.values()) if (!users.has(e.user)) users.set(e.user, users.size);
  u32(users.size);
  for (const u of users.keys()) str(u);
  for (const e of m.entries.values()) {
    parts.push(Buffer.of(e.type === 'file' ? FILE : LINK));
    u32(users.get(e.user)!);
    str(e.path);
    if (e.type === 'file') {
      const size = Buffer.allocUnsafe(8);
      size.writeDoubleLE(e.filesize, 0);
      parts.push(size);
      str(e.mtime);
      str(e.hash);
    } else str(e.reference);
  }
  const body = Buffer.concat(parts);
  const head = Buffer.alloc(HEADER);
  let o = MAGIC.copy(head, 0);
  o = head.writeUInt32LE(VERSION, o);
  o = head.writeUInt32LE(m.entries.size, o);
  o += head.write(digest, o, 'latin1');
  o = head.writeUInt32LE(body.length, o);
  head.writeBigUInt64LE(xxh3.xxh64(body), o);
  return Buffer.concat([head, body]);
}

/** The manifest a mirror holds, if it is whole and made from bytes of xxh3-128 `digest`; else null. */
export function decodeMirror(buf: Buffer, digest: string): Manifest | null {
  if (buf.length < HEADER || !buf.subarray(0, MAGIC.length).equals(MAGIC)) return null;
  let o = MAGIC.length;
  if (buf.readUInt32LE(o) !== VERSION) return null;
  const n = buf.readUInt32LE(o + 4);
  if (buf.toString('latin1', o + 8, o + 40) !== digest) return null;
  const bodyLength = buf.readUInt32LE(o + 40);
  if (HEADER + bodyLength !== buf.length) return null;
  const body = buf.subarray(HEADER);
  if (xxh3.xxh64(body) !== buf.readBigUInt64LE(o + 44)) return null;
  // the checksum passed: what follows was written by encodeMirror (a bound
  // overrun below can only mean a bug, and then the JSON is read instead)
  o = 0;
  const u32 = (): number => {
    const v = body.readUInt32LE(o);
    o += 4;
    return v;
  };
  const str = (): string => {
    const len = u32();
    const s = body.toString('utf8', o, o + len);
    o += len;
    return s;
  };
  try {
    const head = JSON.parse(str()) as { metadata: ManifestMetadata; extra: Record<string, unknown> };
    const users: string[] = [];
    for (let i = u32(); i > 0; i--) users.push(str());
    const entries = new Map<string, ManifestEntry>();
    for (let i = 0; i < n; i++) {
      const type = body[o++];
      const user = users[u32()]!;
      const path = str();
      if (type === FILE) {
        const filesize = body.readDoubleLE(o);
        o += 8;
        const mtime = str();
        entries.set(path, { type: 'file', path, user, filesize, mtime, hash: str() });
      } else entries.set(path, { type: 'link', path, user, reference: str() });
    }
    if (o !== body.length || entries.size !== n) return null;
    return Manifest.fromMap(entries, head.metadata, head.extra);
  } catch {
    return null;
  }
}

/**
 * Read the manifest `file` (null when it does not exist), through its mirror
 * `mirrorFile` when that was made from these very bytes; otherwise parse the
 * JSON (its errors as parseManifest words them) and write the mirror for the
 * next read (best effort: a mirror that cannot be written is only slower).
 * Returns the file's bytes too: callers compare them with the repository's.
 */
export async function readManifestMirrored(
  file: string,
  mirrorFile: string,
): Promise<{ manifest: Manifest; bytes: Buffer } | null> {
  const bytes = await readManifestBytes(file);
  if (!bytes) return null;
  const digest = digestOf(bytes);
  const mirror = await readFile(mirrorFile).catch(() => null);
  const mirrored = mirror && decodeMirror(mirror, digest);
  if (mirrored) return { manifest: mirrored, bytes };
  const manifest = parseManifest(bytes, file);
  if (mirrorable(manifest)) await writeFileAtomic(mirrorFile, encodeMirror(manifest, digest)).catch(() => undefined);
  return { manifest, bytes };
}
