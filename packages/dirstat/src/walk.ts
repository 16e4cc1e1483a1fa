/**
 * A recorded walk: the listings of a tree's directories as a walk saw them,
 * and the check that the tree is still exactly that. A caller that proved
 * something about a tree from its listings (dsg: "this tree is its last
 * sync") records them; while every recorded directory lists the same names
 * with the same kinds, and the entries it marked `checked` the same size,
 * mtime, inode and ctime, the same walk would prove the same again. The
 * native check does it without one string or number per entry crossing into
 * JavaScript, off the JavaScript thread, with the directories spread over
 * several threads: 100k files in 0.07 s where listing them into JavaScript
 * and comparing there takes 0.18 s (bench machine, 2 cores).
 *
 * The record is a cache, read as one: a record that does not decode is
 * answered `false`, never an error; its integrity (a flipped `checked` byte
 * would skip a file) is the storing caller's to guard, with a checksum.
 *
 * Format (little-endian): u32 directories; per directory u32 path length,
 * the path relative to the root (UTF-8, '' for the root itself, components
 * neither empty nor `.` nor `..`), u32 entries; per entry (in the listing's
 * order: bytes of the name) u8 kind, u8 checked, u16 name length, the name,
 * and when checked `FIELDS` f64.
 */
import { FIELDS, listDirJs, type DirStats } from './list.js';
import { loadNative } from './native.js';

/** One directory as a walk listed it; `checked[i]` = 1 where entry i's stats must still match (not only its name and kind). */
export interface ListedDir {
  /** relative to the root, '/'-separated ('' for the root) */
  rel: string;
  list: DirStats;
  checked: Uint8Array;
}

const validRel = (rel: string): boolean =>
  rel === '' || rel.split('/').every((c) => c !== '' && c !== '.' && c !== '..' && !c.includes('\0'));

/** The record of `dirs` (see the module comment). Throws on a path that could not be checked. */
export function encodeWalk(dirs: readonly ListedDir[]): Buffer {
  let size = 4;
  const names: Buffer[][] = [];
  const rels: Buffer[] = [];
  for (const d of dirs) {
    if (!validRel(d.rel)) throw new Error(`dirstat: not a relative directory path: '${d.rel}'`);
    const rel = Buffer.from(d.rel, 'utf8');
    const ns = d.list.names.map((n) => Buffer.from(n, 'utf8'));
    if (d.checked.length !== ns.length || d.list.kinds.length !== ns.length)
      throw new Error('dirstat: a listing and its checked marks differ in length');
    rels.push(rel);
    names.push(ns);
    size += 8 + rel.length;
    ns.forEach((b, i) => {
      if (b.length > 0xffff) throw new Error('dirstat: a name longer than 65535 bytes');
      size += 4 + b.length + (d.checked[i] ? FIELDS * 8 : 0);
    });
  }
  const out = Buffer.allocUnsafe(size);
  let at = out.writeUInt32LE(dirs.length, 0);
  dirs.forEach((d, k) => {
    at = out.writeUInt32LE(rels[k]!.length, at);
    at += rels[k]!.copy(out, at);
    at = out.writeUInt32LE(names[k]!.length, at);
    names[k]!.forEach((b, i) => {
      at = out.writeUInt8(d.list.kinds[i]!, at);
      at = out.writeUInt8(d.checked[i] ? 1 : 0, at);
      at = out.writeUInt16LE(b.length, at);
      at += b.copy(out, at);
      if (d.checked[i]) for (let f = 0; f < FIELDS; f++) at = out.writeDoubleLE(d.list.stats[i * FIELDS + f]!, at);
    });
  });
  return out;
}

interface DecodedEntry {
  kind: number;
  name: Buffer;
  stats: number[] | null;
}

/** The record's directories, or null when it is not a whole, well-formed record. */
function decodeWalk(walk: Buffer): { rel: string; entries: DecodedEntry[] }[] | null {
  try {
    let at = 0;
    const nd = walk.readUInt32LE(at);
    at += 4;
    const dirs: { rel: string; entries: DecodedEntry[] }[] = [];
    for (let k = 0; k < nd; k++) {
      const relLen = walk.readUInt32LE(at);
      at += 4;
      if (at + relLen > walk.length) return null;
      const relBytes = walk.subarray(at, at + relLen);
      const rel = relBytes.toString('utf8');
      if (!Buffer.from(rel, 'utf8').equals(relBytes) || !validRel(rel)) return null;
      at += relLen;
      const n = walk.readUInt32LE(at);
      at += 4;
      const entries: DecodedEntry[] = [];
      for (let i = 0; i < n; i++) {
        const kind = walk.readUInt8(at);
        const checked = walk.readUInt8(at + 1);
        const len = walk.readUInt16LE(at + 2);
        at += 4;
        if (at + len > walk.length) return null;
        const name = walk.subarray(at, at + len);
        at += len;
        let stats: number[] | null = null;
        if (checked) {
          stats = [];
          for (let f = 0; f < FIELDS; f++, at += 8) stats.push(walk.readDoubleLE(at));
        }
        entries.push({ kind, name, stats });
      }
      dirs.push({ rel, entries });
    }
    return at === walk.length ? dirs : null;
  } catch {
    return null; // read past the end
  }
}

/**
 * The same check in JavaScript (where the add-on cannot load, and to check
 * that both agree): every recorded directory listed with listDirJs, with a
 * turn of the event loop between directories (as the native check leaves the
 * JavaScript thread free).
 */
export async function sameWalkJs(root: string, walk: Buffer): Promise<boolean> {
  const dirs = decodeWalk(walk);
  if (!dirs) return false;
  const base = root.length > 1 ? root.replace(/\/+$/, '') : root;
  for (const d of dirs) {
    await new Promise<void>((resolve) => setImmediate(resolve));
    let l: DirStats;
    try {
      l = listDirJs(d.rel ? `${base}/${d.rel}` : base);
    } catch {
      return false;
    }
    if (l.names.length !== d.entries.length) return false;
    for (let i = 0; i < d.entries.length; i++) {
      const e = d.entries[i]!;
      if (l.kinds[i] !== e.kind || !Buffer.from(l.names[i]!, 'utf8').equals(e.name)) return false;
      if (e.stats?.some((v, f) => v !== l.stats[i * FIELDS + f])) return false;
    }
  }
  return true;
}

/**
 * Whether the tree under `root` is still the walk recorded in `walk`
 * (encodeWalk): natively off the JavaScript thread, else sameWalkJs.
 * False for a record that does not decode; never throws for the tree's state.
 */
export function sameWalk(root: string, walk: Buffer): Promise<boolean> {
  const addon = loadNative();
  return addon ? addon.verify(root, walk) : sameWalkJs(root, walk);
}
