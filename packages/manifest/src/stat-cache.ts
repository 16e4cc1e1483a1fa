import { readFileSync } from 'node:fs';
import { mkdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from '@dsg/contracts';
import { HEX16, hashBytes } from './hash.js';
import { comparePaths } from './order.js';

/**
 * The stat cache: path → (size, mtime, inode, ctime, hash). A file whose
 * lstat still shows the same four values is not read again. It is only a
 * cache: a file that is missing, of another version, truncated or corrupt
 * (checksum) is ignored — every file is hashed — and rewritten, never
 * trusted in part.
 *
 * Format 3 (binary, little-endian), read with one readFile and no per-row
 * parsing (loading 100k rows of format 2, one JSON.parse, took ~0.4 s):
 *
 *   0  "dsgstat\n"                   magic
 *   8  u32 version (3)   12 u32 rows (n)   16 u32 path bytes (p)   20 u32 0
 *   24 16 ASCII hex digits: xxh3-64 of every byte from 40 to the end
 *   40 f64 size[n], f64 mtimeMs[n], f64 inode[n], f64 ctimeMs[n]
 *      16·n ASCII hex digits (the hashes), then the paths, UTF-8, each
 *      followed by NUL (never part of a name): exactly p bytes.
 *
 * Rows are written in path order (comparePaths), so the status fast path
 * (`fast-status.ts`) reads them beside a walk in the same order, without an
 * index. A file with rows out of order (written by an earlier version) is
 * still read, and rewritten in order by the next scan.
 *
 * Numbers are the floats Node reports (mtimeMs with its sub-millisecond
 * digits), not bigints: the 14 BigInts of every bigint stat dominated a
 * 100k-file scan's garbage collection. ctime (format 3) also catches a
 * rewrite that restored size and mtime (rsync --inplace, cp -p), at the cost
 * of rehashing a file after a chmod.
 *
 * Format 2 (`{"version":2,"entries":{path:[size,mtimeMs,inode,"hash"]}}`,
 * the `.dsg/stat-cache.json` of earlier versions) is still read, once: its
 * rows hold no ctime, so each is trusted on size, mtime and inode one last
 * time, and the cache is rewritten in format 3 (under the new name, the
 * legacy file then removed).
 */
export interface StatKey {
  size: number;
  mtimeMs: number;
  ino: number;
  /** absent: not compared (a format-2 row, or a caller without it) */
  ctimeMs?: number;
}

const MAGIC = Buffer.from('dsgstat\n', 'latin1');
const VERSION = 3;
const HEADER = 40;
/** The file name earlier versions kept the cache under (format 2), read when the new file is missing. */
export const LEGACY_STAT_CACHE_NAME = 'stat-cache.json';

export class StatCache {
  // Rows loaded from the file, by column; row i's path is paths[i].
  private paths: string[] = [];
  private sizes: Float64Array<ArrayBufferLike> = new Float64Array(0);
  private mtimes: Float64Array<ArrayBufferLike> = new Float64Array(0);
  private inos: Float64Array<ArrayBufferLike> = new Float64Array(0);
  /** NaN: not known (format 2), never compared */
  private ctimes: Float64Array<ArrayBufferLike> = new Float64Array(0);
  /** the loaded hashes, 16 characters each, sliced out only on a hit */
  private hashText = '';
  /** row → hash when set() replaced a loaded row's hash */
  private replaced = new Map<number, string>();
  private index = new Map<string, number>();
  /** per loaded row: 1 when the scan saw the path (lookup or set), 2 when dropped */
  private marks = new Uint8Array(0);
  /** rows for paths the file did not hold */
  private added = new Map<string, { key: StatKey; hash: string }>();
  /** a legacy cache file to remove once this one is saved */
  private legacy: string | null = null;
  /** whether save() has anything new to write (an unchanged tree rewrites nothing) */
  dirty = false;

  static async load(file: string | undefined): Promise<StatCache> {
    const c = new StatCache();
    if (!file) return c;
    let bytes: Buffer;
    try {
      bytes = await readFile(file);
    } catch {
      // missing: perhaps an earlier version's cache beside it
      c.dirty = true;
      const legacy = path.join(path.dirname(file), LEGACY_STAT_CACHE_NAME);
      if (path.resolve(legacy) === path.resolve(file)) return c;
      try {
        c.loadLegacy(await readFile(legacy, 'utf8'));
        c.legacy = legacy;
      } catch {
        // no legacy cache either
      }
      return c;
    }
    if (!c.loadV3(bytes)) {
      c.clear();
      c.dirty = true;
      // an earlier version's JSON at the same path is read once and rewritten
      if (bytes[0] === 0x7b) c.loadLegacy(bytes.toString('utf8'));
    }
    return c;
  }

  /** Format 3; false (nothing kept) when the file is not exactly that. */
  private loadV3(bytes: Buffer): boolean {
    if (bytes.length < HEADER || !bytes.subarray(0, 8).equals(MAGIC)) return false;
    const n = bytes.readUInt32LE(12);
    const pathBytes = bytes.readUInt32LE(16);
    if (bytes.readUInt32LE(8) !== VERSION || bytes.readUInt32LE(20) !== 0) return false;
    if (bytes.length !== HEADER + 48 * n + pathBytes) return false;
    if (bytes.toString('latin1', 24, 40) !== hashBytes(bytes.subarray(HEADER))) return false;
    // Float64Array views need an 8-aligned offset; readFile's buffer usually is
    const body = bytes.byteOffset % 8 === 0 ? bytes : Buffer.from(bytes);
    const col = (k: number): Float64Array => new Float64Array(body.buffer, body.byteOffset + HEADER + 8 * n * k, n);
    const hashText = body.toString('latin1', HEADER + 32 * n, HEADER + 48 * n);
    const blob = body.toString('utf8', HEADER + 48 * n, body.length);
    if (n > 0 && !blob.endsWith('\0')) return false;
    const paths = n > 0 ? blob.slice(0, -1).split('\0') : [];
    if (paths.length !== n || (n > 0 && !/^[0-9a-f]*$/.test(hashText))) return false;
    const index = new Map<string, number>();
    for (let i = 0; i < n; i++) index.set(paths[i]!, i);
    if (index.size !== n) return false; // a path twice: not a file this code wrote
    // an earlier version wrote rows in scan order: rewritten in path order for the fast path
    for (let i = 1; i < n; i++) {
      if (comparePaths(paths[i - 1]!, paths[i]!) >= 0) {
        this.dirty = true;
        break;
      }
    }
    this.paths = paths;
    this.sizes = col(0);
    this.mtimes = col(1);
    this.inos = col(2);
    this.ctimes = col(3);
    this.hashText = hashText;
    this.index = index;
    this.marks = new Uint8Array(n);
    return true;
  }

  /** Format 2 (JSON); rows of the wrong shape are skipped. Always leaves the cache dirty (rewritten as format 3). */
  private loadLegacy(text: string): void {
    this.dirty = true;
    let raw: { version?: unknown; entries?: unknown };
    try {
      raw = JSON.parse(text) as typeof raw;
    } catch {
      return;
    }
    if (raw.version !== 2 || typeof raw.entries !== 'object' || raw.entries === null) return;
    const rows = raw.entries as Record<string, unknown>;
    const keep: [string, number, number, number, string][] = [];
    for (const p of Object.keys(rows)) {
      const row = rows[p];
      if (
        Array.isArray(row) &&
        row.length === 4 &&
        typeof row[0] === 'number' &&
        typeof row[1] === 'number' &&
        typeof row[2] === 'number' &&
        typeof row[3] === 'string' &&
        HEX16.test(row[3]) &&
        !p.includes('\0')
      ) {
        keep.push([p, row[0], row[1], row[2], row[3]]);
      }
    }
    const n = keep.length;
    this.paths = keep.map((r) => r[0]);
    this.sizes = Float64Array.from(keep, (r) => r[1]);
    this.mtimes = Float64Array.from(keep, (r) => r[2]);
    this.inos = Float64Array.from(keep, (r) => r[3]);
    this.ctimes = new Float64Array(n).fill(NaN);
    this.hashText = keep.map((r) => r[4]).join('');
    this.index = new Map(this.paths.map((p, i) => [p, i]));
    this.marks = new Uint8Array(n);
  }

  private clear(): void {
    this.paths = [];
    this.sizes = this.mtimes = this.inos = this.ctimes = new Float64Array(0);
    this.hashText = '';
    this.index = new Map();
    this.marks = new Uint8Array(0);
  }

  /** Number of rows (loaded and not dropped, plus added). */
  get size(): number {
    let n = this.added.size;
    for (let i = 0; i < this.marks.length; i++) if (this.marks[i] !== 2) n++;
    return n;
  }

  /**
   * The cached hash when size, mtime, inode and ctime all still match (ctime
   * only when both sides know it). Marks the path as seen (dropUnseen).
   */
  lookup(relPath: string, key: StatKey): string | undefined {
    const i = this.index.get(relPath);
    if (i === undefined) {
      const a = this.added.get(relPath);
      return a && sameKey(a.key, key) ? a.hash : undefined;
    }
    if (this.marks[i] === 2) return undefined;
    this.marks[i] = 1;
    if (this.sizes[i] !== key.size || this.mtimes[i] !== key.mtimeMs || this.inos[i] !== key.ino) return undefined;
    const ct = this.ctimes[i]!;
    if (ct === ct && key.ctimeMs !== undefined && ct !== key.ctimeMs) return undefined; // ct === ct: not NaN
    return this.replaced.get(i) ?? this.hashText.slice(16 * i, 16 * i + 16);
  }

  set(relPath: string, key: StatKey, hash: string): void {
    const i = this.index.get(relPath);
    if (i !== undefined && this.marks[i] !== 2) {
      this.marks[i] = 1;
      this.sizes[i] = key.size;
      this.mtimes[i] = key.mtimeMs;
      this.inos[i] = key.ino;
      this.ctimes[i] = key.ctimeMs ?? NaN;
      this.replaced.set(i, hash);
    } else {
      this.added.set(relPath, { key: { ...key }, hash });
    }
    this.dirty = true;
  }

  /** Forget one path (a file hashed but not cached: its old row must not answer a later lookup). */
  delete(relPath: string): void {
    const i = this.index.get(relPath);
    if (i !== undefined && this.marks[i] !== 2) {
      this.marks[i] = 2;
      this.dirty = true;
    }
    if (this.added.delete(relPath)) this.dirty = true;
  }

  /** Keep only `keep` paths (drops deleted files). */
  retain(keep: Set<string>): void {
    for (let i = 0; i < this.paths.length; i++) {
      if (this.marks[i] !== 2 && !keep.has(this.paths[i]!)) {
        this.marks[i] = 2;
        this.dirty = true;
      }
    }
    for (const p of this.added.keys()) {
      if (!keep.has(p)) {
        this.added.delete(p);
        this.dirty = true;
      }
    }
  }

  /** Drop the loaded rows no lookup() or set() asked about since load: files the scan did not find. */
  dropUnseen(): void {
    for (let i = 0; i < this.marks.length; i++) {
      if (this.marks[i] === 0) {
        this.marks[i] = 2;
        this.dirty = true;
      }
    }
  }

  async save(file: string): Promise<void> {
    await mkdir(path.dirname(file), { recursive: true });
    await writeFileAtomic(file, this.serialize());
    this.dirty = false;
    if (this.legacy) {
      await rm(this.legacy, { force: true });
      this.legacy = null;
    }
  }

  /** The file's bytes (format 3). */
  serialize(): Buffer {
    const rows: number[] = [];
    for (let i = 0; i < this.paths.length; i++) if (this.marks[i] !== 2) rows.push(i);
    // loaded rows as [path, row], added ones as [path, -1 - k]; written in path order
    const order: [string, number][] = rows.map((i) => [this.paths[i]!, i]);
    const added = [...this.added];
    added.forEach(([p], k) => order.push([p, -1 - k]));
    order.sort((a, b) => comparePaths(a[0], b[0]));
    const n = order.length;
    const pathParts: string[] = [];
    const hashParts: string[] = [];
    const num = new Float64Array(4 * n);
    let r = 0;
    for (const [p, i] of order) {
      if (i >= 0) {
        num[r] = this.sizes[i]!;
        num[n + r] = this.mtimes[i]!;
        num[2 * n + r] = this.inos[i]!;
        num[3 * n + r] = this.ctimes[i]!;
        hashParts.push(this.replaced.get(i) ?? this.hashText.slice(16 * i, 16 * i + 16));
      } else {
        const { key, hash } = added[-1 - i]![1];
        num[r] = key.size;
        num[n + r] = key.mtimeMs;
        num[2 * n + r] = key.ino;
        num[3 * n + r] = key.ctimeMs ?? NaN;
        hashParts.push(hash);
      }
      pathParts.push(p);
      r++;
    }
    const pathBlob = Buffer.from(n ? pathParts.join('\0') + '\0' : '', 'utf8');
    const out = Buffer.alloc(HEADER + 48 * n + pathBlob.length);
    MAGIC.copy(out, 0);
    out.writeUInt32LE(VERSION, 8);
    out.writeUInt32LE(n, 12);
    out.writeUInt32LE(pathBlob.length, 16);
    Buffer.from(num.buffer, num.byteOffset, num.byteLength).copy(out, HEADER);
    out.write(hashParts.join(''), HEADER + 32 * n, 'latin1');
    pathBlob.copy(out, HEADER + 48 * n);
    out.write(hashBytes(out.subarray(HEADER)), 24, 'latin1');
    return out;
  }
}

/**
 * A format-3 stat cache as columns, for the status fast path: no string per
 * row (row i's path is `paths.slice(pathAt[i], pathAt[i] + pathLength[i])`).
 * Null when the file is missing or not exactly format 3 (the scan then
 * decides, as always).
 */
export interface StatColumns {
  n: number;
  sizes: Float64Array;
  mtimes: Float64Array;
  inos: Float64Array;
  ctimes: Float64Array;
  hashText: string;
  paths: string;
  pathAt: Uint32Array;
  pathLength: Uint32Array;
}

export function readStatColumns(file: string): StatColumns | null {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file); // one read call (see readMirrorColumns)
  } catch {
    return null;
  }
  if (bytes.length < HEADER || !bytes.subarray(0, 8).equals(MAGIC)) return null;
  const n = bytes.readUInt32LE(12);
  const pathBytes = bytes.readUInt32LE(16);
  if (bytes.readUInt32LE(8) !== VERSION || bytes.readUInt32LE(20) !== 0) return null;
  if (bytes.length !== HEADER + 48 * n + pathBytes) return null;
  if (bytes.toString('latin1', 24, 40) !== hashBytes(bytes.subarray(HEADER))) return null;
  const body = bytes.byteOffset % 8 === 0 ? bytes : Buffer.from(bytes);
  const col = (k: number): Float64Array => new Float64Array(body.buffer, body.byteOffset + HEADER + 8 * n * k, n);
  const hashText = body.toString('latin1', HEADER + 32 * n, HEADER + 48 * n);
  if (!/^[0-9a-f]*$/.test(hashText)) return null;
  const paths = body.toString('utf8', HEADER + 48 * n, body.length);
  const pathAt = new Uint32Array(n);
  const pathLength = new Uint32Array(n);
  let at = 0;
  for (let i = 0; i < n; i++) {
    const end = paths.indexOf('\0', at);
    if (end < 0) return null;
    pathAt[i] = at;
    pathLength[i] = end - at;
    at = end + 1;
  }
  if (at !== paths.length) return null;
  return { n, sizes: col(0), mtimes: col(1), inos: col(2), ctimes: col(3), hashText, paths, pathAt, pathLength };
}

function sameKey(a: StatKey, b: StatKey): boolean {
  if (a.size !== b.size || a.mtimeMs !== b.mtimeMs || a.ino !== b.ino) return false;
  return a.ctimeMs === undefined || b.ctimeMs === undefined || a.ctimeMs === b.ctimeMs;
}
