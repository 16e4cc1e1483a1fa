/**
 * One directory's entries with each entry's `lstat`, in one call: the walk
 * of a warm, unchanged tree (the everyday `dsg status`) is bound by one stat
 * per file, and a native add-on does them without building a `Stats` object
 * each. Where the add-on cannot load (no prebuild for the platform, a libc
 * it was not built for) the same answer comes from `readdirSync` and
 * `lstatSync`; `DSG_DIRSTAT=js` chooses that path on purpose.
 */
import { lstatSync, readdirSync } from 'node:fs';
import { constants } from 'node:os';
import { loadNative } from './native.js';

/** What an entry was when it was looked at (by `lstat`: a link is a link). */
export const Kind = {
  /** listed, then gone before its `lstat` (or not statable) */
  gone: 0,
  file: 1,
  dir: 2,
  link: 3,
  /** a fifo, socket or device */
  other: 4,
  /** a name that is not UTF-8: no JavaScript string names that file */
  undecodable: 5,
} as const;
export type Kind = (typeof Kind)[keyof typeof Kind];

/** Doubles per entry in `DirStats.stats`: size, mtimeMs, ino, ctimeMs (as `fs.Stats` has them; 0 where no stat). */
export const FIELDS = 4;

/**
 * A directory's entries (not `.` and `..`) in the byte order of their UTF-8
 * names (`strcmp`; the order libuv's scandir gives `readdirSync`, and dsg's
 * path order for siblings that are not directories).
 */
export interface DirStats {
  names: string[];
  kinds: Uint8Array;
  /** `FIELDS` numbers per entry, entry `i` at `i * FIELDS` */
  stats: Float64Array;
}

/** Which lister answers `listDir` in this process. */
export function lister(): 'native' | 'js' {
  return loadNative() ? 'native' : 'js';
}

const errnoNames = new Map(Object.entries(constants.errno).map(([name, no]) => [no, name]));

function listError(errno: number, dir: string): NodeJS.ErrnoException {
  const code = errnoNames.get(errno) ?? 'EIO';
  return Object.assign(new Error(`${code}: cannot list directory '${dir}'`), { code, errno: -errno, path: dir });
}

/** The Kind of what `fs` said of an entry (an lstat's Stats, or a Dirent with file types); none: gone. */
export function kindOf(st: { isFile(): boolean; isDirectory(): boolean; isSymbolicLink(): boolean } | undefined): Kind {
  if (!st) return Kind.gone;
  return st.isFile() ? Kind.file : st.isDirectory() ? Kind.dir : st.isSymbolicLink() ? Kind.link : Kind.other;
}

/**
 * Which entries of `names` (readdirSync's strings) stand for bytes that are
 * not UTF-8: the raw listing comes in the same byte order, so entry i is raw
 * entry i. A listing that changed in between (an entry added or removed)
 * cannot be matched up: then every name with U+FFFD counts as undecodable.
 */
function undecodable(dir: string, names: string[]): (i: number) => boolean {
  const raw = readdirSync(dir, { encoding: 'buffer' });
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const bad = (b: Buffer): boolean => {
    try {
      decoder.decode(b);
      return false;
    } catch {
      return true;
    }
  };
  if (raw.length !== names.length || raw.some((b, i) => b.toString('utf8') !== names[i]))
    return (i) => names[i]!.includes('\uFFFD');
  return (i) => bad(raw[i]!);
}

/** The JavaScript lister: the same answer, one `lstatSync` per entry (`readdirSync` sorts by bytes, as the add-on does). */
export function listDirJs(dir: string): DirStats {
  const names = readdirSync(dir);
  const kinds = new Uint8Array(names.length);
  const stats = new Float64Array(names.length * FIELDS);
  const base = dir.endsWith('/') ? dir : `${dir}/`;
  // a name with U+FFFD may stand for bytes that are not UTF-8 (rare: list again to tell)
  const isUndecodable = names.some((n) => n.includes('\uFFFD')) ? undecodable(dir, names) : null;
  names.forEach((name, i) => {
    if (isUndecodable?.(i)) {
      kinds[i] = Kind.undecodable;
      return;
    }
    let st: ReturnType<typeof lstatSync>;
    try {
      st = lstatSync(base + name, { throwIfNoEntry: false });
    } catch {
      st = undefined; // EACCES and the like: as the native lister, not statable
    }
    kinds[i] = kindOf(st);
    if (!st) return;
    stats[i * FIELDS] = st.size;
    stats[i * FIELDS + 1] = st.mtimeMs;
    stats[i * FIELDS + 2] = st.ino;
    stats[i * FIELDS + 3] = st.ctimeMs;
  });
  return { names, kinds, stats };
}

/**
 * The entries of `dir` with their `lstat`. Throws as `readdirSync` does
 * (an error with `code`, e.g. `ENOENT`, `ENOTDIR`, `EACCES`) when the
 * directory itself cannot be listed.
 */
export function listDir(dir: string): DirStats {
  const list = loadNative()?.list;
  if (!list) return listDirJs(dir);
  const r = list(dir);
  if (typeof r === 'number') throw listError(r, dir);
  return { names: r[0], kinds: r[1], stats: r[2] };
}
