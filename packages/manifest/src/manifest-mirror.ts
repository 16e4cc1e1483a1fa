/**
 * A working copy's last sync (`.dsg/last-sync.json`) read without parsing its
 * JSON each time: a binary mirror of the parsed manifest, bound to the exact
 * bytes it was made from by their SHA-256. JSON.parse and the per-entry
 * checks of a 100k-entry manifest (23 MB) took most of a warm `dsg status`
 * (0.6 s of CPU of 1.7 s); decoding the mirror builds the same entries from
 * length-prefixed strings. Like git's index, it is derived, local data: a
 * missing, stale, truncated or corrupt mirror is ignored (the JSON is parsed
 * and the mirror rewritten), never trusted in part. Only manifests that
 * round-trip through the mirror exactly get one: every entry usable and
 * without unknown fields, a metadata block present with a non-empty
 * `created_by` (the cases parseManifest records out of band).
 *
 * The status fast path need not even read the JSON: the header also records
 * the file's identity (device, inode, size, mtime, ctime) as it was when its
 * SHA-256 was last taken, and when. While the file still has that identity,
 * and had it well before that moment (git's racy-clean rule: a change within
 * a coarse timestamp tick of the check could keep its times), the recorded
 * digest is the file's. Any rewrite — a sync, the original dsg, an editor —
 * gives it another inode or ctime, and the bytes are hashed again. Only this
 * user can change the file without changing its ctime, so the binding is as
 * strong as the digest against what a repository sends.
 */
import { createHash } from 'node:crypto';
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { xxh3 } from '@node-rs/xxhash';
import { writeFileAtomic } from '@dsg/contracts';
import { identityOf, nowNs, sameIdentity, settled, type SourceIdentity } from './file-identity.js';
import { parseManifest, readManifestBytes } from './format.js';
import { FILE_FIELDS, LINK_FIELDS, Manifest, type ManifestEntry, type ManifestMetadata } from './model.js';
import { ENTRY_RULES_VERSION, unusableReason } from './unusable.js';

const MAGIC = Buffer.from('dsgmirr\n', 'latin1');
const VERSION = 4;
/**
 * magic, u32 format version × 2^16 + ENTRY_RULES_VERSION, u32 entries, 64 hex
 * digits of the source's SHA-256, u32 body length, u64 body xxh3-64, then the
 * binding: the source's u64 device, inode, size, mtime ns, ctime ns, and the
 * u64 time (ns) they were checked — all 0 when unbound. The rules version: a
 * mirror holds only entries the rules found usable, and a dsg with stricter
 * rules must judge them again.
 */
const BIND_AT = MAGIC.length + 4 + 4 + 64 + 4 + 8;
const HEADER = BIND_AT + 6 * 8;
/** How long before a binding's check the source must have last changed for its times to be trusted. */
export const MIRROR_RACY_MS = 2000;

/** Record in `buf`'s header that its source had identity `id` at `atNs` (null: unbound). */
function writeBinding(buf: Buffer, id: SourceIdentity | null, atNs: bigint): void {
  let o = BIND_AT;
  for (const v of id ? [id.dev, id.ino, id.size, id.mtimeNs, id.ctimeNs, atNs] : [0n, 0n, 0n, 0n, 0n, 0n])
    o = buf.writeBigUInt64LE(v, o);
}

/** The digest a mirror records for a source that has identity `id` now, when its binding vouches for it; else null. */
function boundDigest(buf: Buffer, id: SourceIdentity, racyMs: number): string | null {
  if (buf.length < HEADER || !buf.subarray(0, MAGIC.length).equals(MAGIC)) return null;
  if (buf.readUInt32LE(MAGIC.length) !== VERSION * 0x10000 + ENTRY_RULES_VERSION) return null;
  const v = (i: number): bigint => buf.readBigUInt64LE(BIND_AT + 8 * i);
  const at = v(5);
  if (at === 0n) return null;
  const bound = { dev: v(0), ino: v(1), size: v(2), mtimeNs: v(3), ctimeNs: v(4) };
  if (!sameIdentity(bound, id) || !settled(bound, at, racyMs)) return null;
  return buf.toString('latin1', MAGIC.length + 8, MAGIC.length + 72);
}

const FILE = 0;
const LINK = 1;

/*
 * SHA-256, not xxh3: last-sync.json holds what a repository sent, and
 * repository content is written by teammates. A crafted collision would let
 * a mirror made from one manifest stand for another, and a sync would plan
 * against the wrong last sync. (The body's xxh3-64 only catches damage: the
 * mirror is this user's own file.)
 */
const digestOf = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

/** In a `u` regex a surrogate class matches only unpaired ones (a pair is one code point). */
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

/** Whether a parsed manifest is one the mirror reproduces exactly. */
function mirrorable(m: Manifest): boolean {
  if (!m.metadata || !m.metadata.created_by) return false;
  for (const e of m.entries.values()) {
    if (unusableReason(e) !== null) return false;
    // a lone surrogate (JSON allows "\udc00") has no UTF-8 form: the mirror would turn it into U+FFFD
    if (LONE_SURROGATE.test(e.user) || LONE_SURROGATE.test(e.path)) return false;
    if (e.type === 'link' ? LONE_SURROGATE.test(e.reference) : LONE_SURROGATE.test(e.mtime + e.hash)) return false;
    if (Object.keys(e).length !== (e.type === 'file' ? FILE_FIELDS.length : LINK_FIELDS.length)) return false;
  }
  return true;
}

/*
 * Body layout: u32 counts and lengths first, then every string of the
 * manifest as one UTF-8 text. Lengths are in UTF-16 code units, so a reader
 * decodes the text once and cuts it with slice() — one decode of a few MB
 * instead of 400k small ones.
 *   u32 head length, u32 users, u32 × users: user lengths,
 *   per entry: u8 type, u32 user index, u32 path length, then
 *     file: f64 filesize, u32 mtime length, u32 hash length; link: u32 reference length
 *   text: head JSON, users, then per entry its path and mtime+hash / reference
 */

/** The mirror of `m`, parsed from bytes whose SHA-256 (hex) is `digest` (unbound: see readMirrorColumns). */
export function encodeMirror(m: Manifest, digest: string): Buffer {
  // Written straight into one buffer of exactly the mirror's size, in two passes over the entries
  // (sizes, then bytes): no array of every string, no joined text, no concatenation — for 100k
  // entries those were ~25 MB alive at once, at the end of a sync that writes its new mirror.
  const users = new Map<string, number>();
  const head = JSON.stringify({ metadata: m.metadata, extra: m.extra });
  let numBytes = 8;
  let textBytes = Buffer.byteLength(head, 'utf8');
  for (const e of m.entries.values()) {
    if (!users.has(e.user)) {
      users.set(e.user, users.size);
      numBytes += 4;
      textBytes += Buffer.byteLength(e.user, 'utf8');
    }
    numBytes += e.type === 'file' ? 25 : 13;
    textBytes += Buffer.byteLength(e.path, 'utf8');
    textBytes +=
      e.type === 'file'
        ? Buffer.byteLength(e.mtime, 'utf8') + Buffer.byteLength(e.hash, 'utf8')
        : Buffer.byteLength(e.reference, 'utf8');
  }
  const out = Buffer.allocUnsafe(HEADER + numBytes + textBytes);
  let o = out.writeUInt32LE(head.length, HEADER);
  let t = HEADER + numBytes;
  const text = (x: string): void => {
    t += out.write(x, t, 'utf8');
  };
  text(head);
  o = out.writeUInt32LE(users.size, o);
  for (const u of users.keys()) {
    o = out.writeUInt32LE(u.length, o);
    text(u);
  }
  for (const e of m.entries.values()) {
    o = out.writeUInt8(e.type === 'file' ? FILE : LINK, o);
    o = out.writeUInt32LE(users.get(e.user)!, o);
    o = out.writeUInt32LE(e.path.length, o);
    text(e.path);
    if (e.type === 'file') {
      o = out.writeDoubleLE(e.filesize, o);
      o = out.writeUInt32LE(e.mtime.length, o);
      o = out.writeUInt32LE(e.hash.length, o);
      text(e.mtime);
      text(e.hash);
    } else {
      o = out.writeUInt32LE(e.reference.length, o);
      text(e.reference);
    }
  }
  const body = out.subarray(HEADER);
  let h = MAGIC.copy(out, 0);
  h = out.writeUInt32LE(VERSION * 0x10000 + ENTRY_RULES_VERSION, h);
  h = out.writeUInt32LE(m.entries.size, h);
  h += out.write(digest, h, 'latin1');
  h = out.writeUInt32LE(body.length, h);
  h = out.writeBigUInt64LE(xxh3.xxh64(body), h);
  out.fill(0, h, HEADER); // the binding: unbound
  return out;
}

/**
 * The mirror of a manifest just serialized to bytes of SHA-256 `digest` (a
 * sync's new last sync: the next command decodes it instead of parsing the
 * JSON), or null for one the mirror cannot reproduce exactly.
 */
export function mirrorOf(m: Manifest, digest: string): Buffer | null {
  return mirrorable(m) ? encodeMirror(m, digest) : null;
}

/** SHA-256 (hex) of bytes, as a mirror binds them. */
export const mirrorDigest = (bytes: Uint8Array): string => digestOf(bytes);

/**
 * A mirror's entry count and body when its header says this format and these
 * rules, it was made from bytes of SHA-256 `digest`, and its body is whole
 * (length and checksum); else null. One check for both decoders.
 */
function checkedBody(buf: Buffer, digest: string): { n: number; body: Buffer } | null {
  if (buf.length < HEADER || !buf.subarray(0, MAGIC.length).equals(MAGIC)) return null;
  const at = MAGIC.length;
  if (buf.readUInt32LE(at) !== VERSION * 0x10000 + ENTRY_RULES_VERSION) return null;
  const n = buf.readUInt32LE(at + 4);
  if (buf.toString('latin1', at + 8, at + 72) !== digest) return null;
  if (HEADER + buf.readUInt32LE(at + 72) !== buf.length) return null;
  const body = buf.subarray(HEADER);
  if (xxh3.xxh64(body) !== buf.readBigUInt64LE(at + 76)) return null;
  return { n, body };
}

/** The manifest a mirror holds, if it is whole and made from bytes of SHA-256 `digest`; else null. */
export function decodeMirror(buf: Buffer, digest: string): Manifest | null {
  const checked = checkedBody(buf, digest);
  if (!checked) return null;
  const { n, body } = checked;
  // the checksum passed, so encodeMirror wrote this: a bound overrun below
  // can only be a bug, and then the JSON is read instead
  try {
    let o = 0;
    const u32 = (): number => {
      const v = body.readUInt32LE(o);
      o += 4;
      return v;
    };
    const headLength = u32();
    const userLengths: number[] = [];
    for (let i = u32(); i > 0; i--) userLengths.push(u32());
    // the numbers end where the text starts: walk them once to find it
    const start = o;
    for (let i = 0; i < n; i++) o += body[o] === FILE ? 25 : 13;
    const text = body.toString('utf8', o);
    o = start;
    let t = 0;
    const cut = (len: number): string => text.slice(t, (t += len));
    const head = JSON.parse(cut(headLength)) as { metadata: ManifestMetadata; extra: Record<string, unknown> };
    const users = userLengths.map(cut);
    const entries = new Map<string, ManifestEntry>();
    for (let i = 0; i < n; i++) {
      const type = body[o++];
      const user = users[u32()]!;
      const pathLength = u32();
      if (type === FILE) {
        const filesize = body.readDoubleLE(o);
        o += 8;
        const mtimeLength = u32();
        const hashLength = u32();
        const path = cut(pathLength);
        entries.set(path, { type: 'file', path, user, filesize, mtime: cut(mtimeLength), hash: cut(hashLength) });
      } else {
        const referenceLength = u32();
        const path = cut(pathLength);
        entries.set(path, { type: 'link', path, user, reference: cut(referenceLength) });
      }
    }
    if (t !== text.length || entries.size !== n || users.length !== userLengths.length) return null;
    return Manifest.fromMap(entries, head.metadata, head.extra);
  } catch {
    return null;
  }
}

/**
 * A mirror read as columns, without an object per entry (the status fast
 * path): every string of the manifest lies in `text`; entry i's path is
 * `text.slice(pathAt[i], pathAt[i] + pathLength[i])`, and so on. Links and
 * users are not needed by its one reader and not kept.
 */
export interface MirrorColumns {
  n: number;
  metadata: ManifestMetadata;
  text: string;
  /** 1 for a file, 0 for a link */
  isFile: Uint8Array;
  pathAt: Uint32Array;
  pathLength: Uint32Array;
  /** a file's hash (a link's: length 0) */
  hashAt: Uint32Array;
  hashLength: Uint32Array;
}

/** decodeMirror without the entries: the same checks, columns instead of objects; null where decodeMirror is null. */
export function decodeMirrorColumns(buf: Buffer, digest: string): MirrorColumns | null {
  const checked = checkedBody(buf, digest);
  if (!checked) return null;
  const { n, body } = checked;
  try {
    let o = 0;
    const u32 = (): number => {
      const v = body.readUInt32LE(o);
      o += 4;
      return v;
    };
    const headLength = u32();
    const userCount = u32();
    let t = headLength;
    for (let i = 0; i < userCount; i++) t += u32();
    const isFile = new Uint8Array(n);
    const pathAt = new Uint32Array(n);
    const pathLength = new Uint32Array(n);
    const hashAt = new Uint32Array(n);
    const hashLength = new Uint32Array(n);
    for (let i = 0; i < n; i++) {
      const type = body[o++];
      if (u32() >= userCount) return null;
      const pl = u32();
      pathAt[i] = t;
      pathLength[i] = pl;
      t += pl;
      if (type === FILE) {
        o += 8;
        const ml = u32();
        const hl = u32();
        isFile[i] = 1;
        hashAt[i] = t + ml;
        hashLength[i] = hl;
        t += ml + hl;
      } else if (type === LINK) {
        t += u32();
      } else return null;
    }
    const text = body.toString('utf8', o);
    if (t !== text.length) return null;
    const head = JSON.parse(text.slice(0, headLength)) as { metadata: ManifestMetadata };
    if (!head.metadata) return null;
    return { n, metadata: head.metadata, text, isFile, pathAt, pathLength, hashAt, hashLength };
  } catch {
    return null;
  }
}

/**
 * A source's size and SHA-256, with its mirror as `decode` reads it (null
 * when there is no whole mirror of these bytes), and the bytes themselves
 * when they had to be read. A mirror bound to the file as it is now answers
 * without the file being read; otherwise it is read and hashed, and a
 * matching mirror is bound for the next time (its only write). Null: no
 * source. One owner of the binding rule for both readers below.
 */
async function readThroughMirror<T>(
  file: string,
  mirrorFile: string,
  decode: (mirror: Buffer, digest: string) => T | null,
  racyMs: number,
): Promise<{ size: number; sha256: string; decoded: T | null; bytes: Buffer | null } | null> {
  // read in one call each (fs.promises reads a large file in 512 KiB round trips through the thread pool:
  // 23 MB took 0.1–0.2 s instead of 0.09 s on the bench machine); the caller starts its requests first
  let mirror: Buffer | null = null;
  try {
    mirror = readFileSync(mirrorFile);
  } catch {
    // no mirror: the full path writes one
  }
  const before = identityOf(file);
  if (mirror && before) {
    // the file is as it was when its digest was last taken: neither read nor hashed
    const bound = boundDigest(mirror, before, racyMs);
    const decoded = bound && decode(mirror, bound);
    if (bound && decoded) return { size: Number(before.size), sha256: bound, decoded, bytes: null };
  }
  // hashed through one small buffer first: the bytes themselves are needed only when there is no mirror
  // of them (100k entries: 23 MB that every command read, then left for the collector)
  // (a regular file only: what is not one — a device behind a link — is left to the full read's errors)
  const streamed = mirror && before ? digestOfFile(file) : null;
  const early = streamed && mirror && decode(mirror, streamed.sha256);
  let bytes: Buffer | null = null;
  if (!early) {
    try {
      bytes = readFileSync(file);
    } catch {
      bytes = await readManifestBytes(file); // ENOENT → null; anything else worded as the full path words it
      if (!bytes) return null;
    }
  }
  const digest = bytes ? digestOf(bytes) : streamed!.sha256;
  const size = bytes ? bytes.length : streamed!.size;
  // a mirror already judged against these bytes' digest is not decoded twice
  const decoded = early || (mirror && digest !== streamed?.sha256 ? decode(mirror, digest) : null);
  if (mirror && decoded && before) {
    // bind the mirror to the file as it is (best effort), once its times can be trusted: the next read is the fast one
    const at = nowNs();
    const after = identityOf(file);
    if (after && sameIdentity(before, after) && settled(after, at, racyMs)) {
      writeBinding(mirror, after, at);
      await writeFileAtomic(mirrorFile, mirror).catch(() => undefined);
    }
  }
  return { size, sha256: digest, decoded: decoded || null, bytes };
}

/** Bytes read per step by digestOfFile. */
const DIGEST_CHUNK = 1 << 20;

/**
 * Size and SHA-256 of a file, read through one reused buffer; null when it
 * cannot be read (the caller's full read words the error). Synchronous, as
 * the whole read it replaces was (see readThroughMirror).
 */
function digestOfFile(file: string): { size: number; sha256: string } | null {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return null;
  }
  try {
    const h = createHash('sha256');
    const buf = Buffer.allocUnsafe(DIGEST_CHUNK);
    let size = 0;
    for (let n; (n = readSync(fd, buf, 0, DIGEST_CHUNK, null)) > 0; size += n) h.update(buf.subarray(0, n));
    return { size, sha256: h.digest('hex') };
  } catch {
    return null;
  } finally {
    closeSync(fd);
  }
}

/**
 * The last sync's size and SHA-256, with its mirror as columns (null when
 * there is no whole mirror of these bytes: readManifestMirrored then parses
 * the JSON and writes one), through readThroughMirror. `racyMs`: how long
 * before a check the file must have last changed for the binding to count
 * (tests shorten it; files they write are always new).
 */
export async function readMirrorColumns(
  file: string,
  mirrorFile: string,
  o: { racyMs?: number } = {},
): Promise<{ size: number; sha256: string; columns: MirrorColumns | null } | null> {
  const r = await readThroughMirror(file, mirrorFile, decodeMirrorColumns, o.racyMs ?? MIRROR_RACY_MS);
  return r && { size: r.size, sha256: r.sha256, columns: r.decoded };
}

/**
 * Read the manifest `file` (null when it does not exist), through its mirror
 * `mirrorFile` when that was made from these very bytes (read through
 * readThroughMirror: a bound mirror answers without the JSON being read);
 * otherwise parse the JSON (its errors as parseManifest words them) and
 * write the mirror for the next read (best effort: a mirror that cannot be
 * written is only slower). Returns the file's size and SHA-256 too, not its
 * bytes: callers compare those with the repository's, and a caller that
 * needs the bytes reads them when it needs them (100k entries: 23 MB not
 * held through a scan and a plan).
 */
export async function readManifestMirrored(
  file: string,
  mirrorFile: string,
  o: { racyMs?: number } = {},
): Promise<{ manifest: Manifest; size: number; sha256: string } | null> {
  const r = await readThroughMirror(file, mirrorFile, decodeMirror, o.racyMs ?? MIRROR_RACY_MS);
  if (!r) return null;
  if (r.decoded) return { manifest: r.decoded, size: r.size, sha256: r.sha256 };
  const manifest = parseManifest(r.bytes!, file);
  if (mirrorable(manifest)) await writeFileAtomic(mirrorFile, encodeMirror(manifest, r.sha256)).catch(() => undefined);
  return { manifest, size: r.size, sha256: r.sha256 };
}
