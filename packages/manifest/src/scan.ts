import {
  closeSync,
  fstatSync,
  lstatSync,
  openSync,
  readSync,
  readdirSync,
  readlinkSync,
  type Dirent,
  type Stats,
} from 'node:fs';
import { lstat, open, readdir, readlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { DsgError, NotFoundError, Semaphore, type ProgressListener } from '@dsg/contracts';
import { FIELDS, Kind, kindOf, listDir, type DirStats } from '@dsg/dirstat';
import { entriesEqual, identicalEntry } from './classify.js';
import { isConflictBackup } from './conflicts.js';
import { HASH_CHUNK, createXxh3Hasher, hashFileHandle } from './hash.js';
import { Manifest, type FileEntry, type ManifestEntry } from './model.js';
import { nfcRepair, validateName } from './names.js';
import { foldKey, isHidden, projectScope } from './scope.js';
import { comparePaths } from './order.js';
import { StatCache, type StatKey } from './stat-cache.js';
import { formatTimestamp, recordedMtimeMs } from './timestamp.js';
import { unusableReason } from './unusable.js';
import { OutsideDataCounter, type OutsideData } from './outside-data.js';

export const DEFAULT_DATA_DIRS: readonly string[] = ['input', 'output', 'frozen'];
export const DEFAULT_IGNORE = {
  names: ['.DS_Store', '__pycache__', '.Rhistory', '.RData', '.ipynb_checkpoints'],
  suffixes: ['.tmp', '.pyc'],
  paths: [] as string[],
} as const;
export { CONFIG_FILE } from './config-file.js';

export interface ScanOptions {
  root: string;
  dataDirs: string[];
  /** replaces the defaults (DEFAULT_IGNORE) per kind when given */
  ignore?: { names?: string[]; suffixes?: string[]; paths?: string[] };
  /** user id recorded on new or changed entries */
  user: string;
  /** zone of the written mtimes; default America/Los_Angeles */
  timeZone?: string;
  /** where the stat cache lives (read, then rewritten); none → every file is hashed */
  statCacheFile?: string;
  /**
   * How long before the scan a file's mtime must lie for its stat to be
   * cached (default 2 s): younger files are hashed, not cached. Tests
   * pass a long window to check the young case without depending on how fast
   * the machine runs.
   */
  racyMs?: number;
  /** the last manifest (cache C): entries equal to it keep its user; paths it holds as unusable entries are left alone */
  previous?: Manifest;
  /** bounded pool size for hashing large files (and all I/O with parallelIo); default 16 */
  concurrency?: number;
  /**
   * Run every call (lstat/readdir/readlink and the reads of small files)
   * concurrently through the pool: worth it on network filesystems. Default
   * false: on a local disk these calls are answered in a few µs, and a trip
   * through libuv's 4-thread pool costs several times that, so they are
   * made synchronously; files above SMALL_FILE are still hashed in parallel.
   */
  parallelIo?: boolean;
  onProgress?: ProgressListener;
  /** how files are opened for hashing (tests count it); default fs.promises.open(file, 'r') */
  openFile?: (file: string) => Promise<FileHandle>;
  /** the same for the synchronous small-file path; returns a file descriptor; default fs.openSync(file, 'r') */
  openFileSync?: (file: string) => number;
}

export interface ScanWarning {
  path: string;
  reason: string;
  /** what was refused: a name (with `nfc` set when only normalization is wrong), a link, a special file */
  kind: 'name' | 'link' | 'special';
  /** the NFC form that would be accepted (for `sync --normalize`) */
  nfc?: string;
}

export interface ScanResult {
  manifest: Manifest;
  warnings: ScanWarning[];
  /** files outside every data directory (not synced; counted on the walk, junk directories left out) */
  outside: OutsideData;
  stats: { files: number; hashed: number; bytesHashed: number };
}

/**
 * A file modified within this window before the scan started may change
 * again within the filesystem's timestamp granularity without its mtime
 * moving ("racy clean"); such files are hashed but not cached.
 */
const RACY_MS = 2000;
/** Files up to this size are hashed on the synchronous path unless parallelIo. */
export const SMALL_FILE = 256 * 1024;

class ScanUnreadableError extends DsgError {
  constructor(rel: string, cause: unknown) {
    super('SCAN_UNREADABLE', `cannot read ${JSON.stringify(rel)}: ${(cause as Error).message}`, {
      cause,
      recoveryHint:
        'Fix the permissions of the named file (or add it to ignore.paths), then run again. It is not left out silently because that would read as a deletion.',
    });
  }
}

/**
 * The scan's ignore rule for a listed name at `rel` (the status fast path
 * applies the same one): ignored names, suffixes and paths (defaults per
 * kind), conflict backups, and the stat cache itself.
 */
export function ignoreRule(
  options: Pick<ScanOptions, 'root' | 'ignore' | 'statCacheFile'>,
): (rel: string, name: string) => boolean {
  const names = new Set(options.ignore?.names ?? DEFAULT_IGNORE.names);
  const suffixes = options.ignore?.suffixes ?? DEFAULT_IGNORE.suffixes;
  // `input/tmp/` and `input/tmp` name the same directory
  const ignoredPaths = new Set((options.ignore?.paths ?? DEFAULT_IGNORE.paths).map((p) => p.replace(/\/+$/, '')));
  // the stat cache never records itself, wherever the caller keeps it
  if (options.statCacheFile) {
    const rel = path.relative(options.root, options.statCacheFile);
    if (rel && !rel.startsWith('..') && !path.isAbsolute(rel)) ignoredPaths.add(rel.split(path.sep).join('/'));
  }
  return (rel, name) =>
    names.has(name) || suffixes.some((s) => name.endsWith(s)) || ignoredPaths.has(rel) || isConflictBackup(name);
}

/**
 * Scan the project's data directories into a
 * manifest without metadata: entries sorted by path, files hashed (or taken
 * from the stat cache), links recorded with their relative targets. Refused
 * names and links become warnings and are left out.
 */
export async function scanProject(options: ScanOptions): Promise<ScanResult> {
  const tz = options.timeZone;
  const isIgnored = ignoreRule(options);
  // validates the data dirs before anything is read
  const scope = projectScope(options.dataDirs);
  const pool = new Semaphore(options.concurrency ?? 16);
  const openFile = options.openFile ?? ((f: string) => open(f, 'r'));
  const openFileSync = options.openFileSync ?? ((f: string) => openSync(f, 'r'));
  const smallBuf = Buffer.allocUnsafe(HASH_CHUNK);
  const cache = await StatCache.load(options.statCacheFile);
  const scanStartMs = Date.now();
  const racyMs = options.racyMs ?? RACY_MS;
  const buffers: Buffer[] = []; // one hashing buffer per concurrent hash, reused

  const entries: ManifestEntry[] = [];
  const warnings: ScanWarning[] = [];
  const outside = new OutsideDataCounter();
  const stats = { files: 0, hashed: 0, bytesHashed: 0 };
  // bytes hashed as they are read (not when a file ends): hashing one big file moves the progress too
  let bytesRead = 0;
  let lastEmit = 0;
  const progress = (phase: 'scan' | 'hash', p?: string, force = false): void => {
    if (!options.onProgress) return;
    const now = Date.now();
    if (!force && now - lastEmit < 100) return;
    lastEmit = now;
    options.onProgress({
      phase,
      files: stats.files,
      hashedFiles: stats.hashed,
      bytes: bytesRead,
      ...(p ? { path: p } : {}),
    });
  };

  /*
   * Paths the last sync (`previous`) holds as entries this dsg cannot use
   * (unusableReason: another tool's backslash name, escaping link, …). The
   * repository keeps them and the sync engine holds them back, so the local
   * copy is left alone as well: not refused (every sync of a working copy the
   * original made would stop on it), not recorded. `heldDirs`: their parents.
   */
  const held = new Set<string>();
  const heldDirs = new Set<string>();
  for (const e of options.previous?.entries.values() ?? []) {
    if (unusableReason(e) === null) continue;
    held.add(e.path);
    for (let i = e.path.indexOf('/'); i > 0; i = e.path.indexOf('/', i + 1)) heldDirs.add(e.path.slice(0, i));
  }

  const previous = options.previous?.entries;
  /** whether the last sync has an entry under directory `rel` (rare: only for an unreadable directory) */
  const holdsBeneath = (rel: string): boolean => {
    const prefix = `${rel}/`;
    // only entries this scan would report (ones out of scope or held back are never deleted)
    for (const p of previous?.keys() ?? [])
      if (p.startsWith(prefix) && scope.dataDirOf(p) !== null && !held.has(p)) return true;
    return false;
  };
  const withPrevUser = (e: ManifestEntry): ManifestEntry => {
    const prev = previous?.get(e.path);
    e.user = prev && entriesEqual(prev, e) ? prev.user : options.user;
    return prev && identicalEntry(prev, e) ? prev : e; // an unchanged file shares the last sync's entry
  };

  /**
   * After hashing: accept when the file did not change while it was read
   * (fstat on the open handle shows the size and mtime seen before, and the
   * bytes read match), else ask for another attempt, at most 3 in all, so an
   * entry never pairs a hash with another version's size and mtime.
   */
  const settle = (
    rel: string,
    key: StatKey,
    st: Stats,
    hash: string,
    bytes: number,
    attempt: number,
  ): { hash: string; key: StatKey } | StatKey => {
    stats.hashed++;
    stats.bytesHashed += bytes;
    const after: StatKey = { size: st.size, mtimeMs: st.mtimeMs, ino: st.ino, ctimeMs: st.ctimeMs };
    if (
      bytes === after.size &&
      after.size === key.size &&
      after.mtimeMs === key.mtimeMs &&
      after.ctimeMs === key.ctimeMs // a rewrite that put the old mtime back (`cp -p`, `touch -r`) still moves ctime
    ) {
      // racy: not cached, and an older row for the path must not answer the next lookup either
      if (scanStartMs - key.mtimeMs > racyMs) cache.set(rel, key, hash);
      else cache.delete(rel);
      progress('hash', rel);
      return { hash, key };
    }
    if (attempt >= 3) {
      throw new DsgError('SCAN_UNSTABLE', `${JSON.stringify(rel)} kept changing while it was being hashed`, {
        recoveryHint: 'Wait until the program writing this file has finished (or ignore it), then run again.',
      });
    }
    return after;
  };

  const hashOne = async (full: string, rel: string, before: StatKey): Promise<{ hash: string; key: StatKey }> => {
    const buf = buffers.pop() ?? Buffer.allocUnsafe(HASH_CHUNK);
    let key = before;
    try {
      for (let attempt = 1; ; attempt++) {
        const fh = await openFile(full);
        try {
          const { hash, bytes } = await hashFileHandle(fh, buf, (n) => {
            bytesRead += n;
            progress('hash', rel);
          });
          const r = settle(rel, key, await fh.stat(), hash, bytes, attempt);
          if ('hash' in r) return r;
          key = r;
        } finally {
          await fh.close();
        }
      }
    } finally {
      buffers.push(buf);
    }
  };

  /** Small files on the synchronous path (see parallelIo): one buffer, no thread-pool trips. */
  const hashSmallSync = (full: string, rel: string, before: StatKey): { hash: string; key: StatKey } => {
    let key = before;
    for (let attempt = 1; ; attempt++) {
      const fd = openFileSync(full);
      try {
        const h = createXxh3Hasher();
        let bytes = 0;
        for (;;) {
          const n = readSync(fd, smallBuf, 0, smallBuf.length, null);
          if (n === 0) break;
          h.update(smallBuf.subarray(0, n));
          bytes += n;
          bytesRead += n;
        }
        const r = settle(rel, key, fstatSync(fd), h.digest(), bytes, attempt);
        if ('hash' in r) return r;
        key = r;
      } finally {
        closeSync(fd);
      }
    }
  };

  /*
   * The walk. Without parallelIo it is synchronous: one native listDir per
   * directory (names, kinds and every entry's lstat in one call: no Dirent,
   * Stats or Date objects per file), in a loop that awaits only for large
   * files (hashed in the background, at most 2 × pool size at a time) and to
   * yield to the event loop every ~50 ms (signals, timers of a progress
   * display). Measured by bench/micro/scan-walk.mjs on 100k files in
   * directories of 1,000 (2 cores, ext4, page cache warm), before listDir:
   * readdirSync + lstatSync 0.35 s, readdir+lstat through libuv's pool with 64 callbacks in flight 0.40 s, with one promise per
   * lstat 1.4 s, fdir's listing + lstatSync 0.52 s; `find -printf` 0.24 s,
   * `git status` 0.28 s. On a local disk a trip through the 4-thread pool
   * costs more than the syscall it carries, so the main thread (which has
   * nothing else to do in a CLI) makes the calls itself; parallelIo sends
   * them through the pool for network filesystems, where the latency is
   * worth overlapping. Directories wait on an explicit stack, one listing
   * alive at a time (visiting every child at once kept ~250 MiB of pending
   * visits alive on a 100k-file tree).
   */
  const poolSize = options.concurrency ?? 16;
  const pending = new Set<Promise<void>>();
  let failed = null as { e: unknown } | null; // set from the background work
  const inBackground = async (work: Promise<void>): Promise<void> => {
    const done: Promise<void> = work.then(
      () => void pending.delete(done),
      (e: unknown) => {
        pending.delete(done);
        failed ??= { e };
      },
    );
    pending.add(done);
    if (pending.size >= 2 * poolSize) await Promise.race(pending);
    if (failed) throw failed.e;
  };

  const dataNames = new Set(scope.dataDirs);
  // root + rel without path.join's normalization per file (rel is built from plain names)
  const rootPrefix = path.join(options.root, '/');
  const abs = (rel: string): string => rootPrefix + rel;
  /** A directory waiting to be listed; `dd`: the data directory its children are in (null: none, outside the data). */
  interface Dir {
    rel: string;
    dd: string | null;
  }
  const dirs: Dir[] = [];

  /**
   * One directory's names (byte order) with their kinds, and on the
   * synchronous path their lstat numbers too: `listDir` (@dsg/dirstat) lists
   * and stats a directory in one native call, without a Dirent, a Stats and
   * its four Dates per file (garbage that set a large sync's peak memory).
   * With parallelIo: readdir with file types through the pool, each file
   * lstat'ed later (statPath).
   */
  const list = async (full: string): Promise<Listing> => {
    if (!options.parallelIo) {
      const l = listDir(full); // throws as readdirSync does
      // an entry the native listing could not stat (gone since it was listed, a name that is not
      // UTF-8, a path too long for lstat): this directory as before, by its file types and one lstat
      // per file, so each such case ends as it always did (vanished: skipped; else the scan refuses)
      if (!l.kinds.some((k) => k === Kind.gone || k === Kind.undecodable)) return l;
      return fromDirents(readdirSync(full, { withFileTypes: true }));
    }
    return fromDirents(await pool.run(() => readdir(full, { withFileTypes: true })));
  };

  /** A failed hash: vanished → null; a DsgError (SCAN_UNSTABLE) as it is; anything else unreadable. */
  const hashFailed = (rel: string, e: unknown): null => {
    if (e instanceof DsgError) throw e;
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null; // deleted during the scan
    throw new ScanUnreadableError(rel, e);
  };

  /** A path in the data tree, by its lstat (kind and numbers): a file (cached, or hashed), a directory, a link, a special file. */
  const afterStat = (rel: string, dd: string, kind: number, seen: StatKey): Promise<void> | undefined => {
    if (kind === Kind.dir) {
      dirs.push({ rel, dd });
      return undefined;
    }
    if (kind === Kind.link) return readLink(rel, null);
    if (kind !== Kind.file) {
      warnings.push({ path: rel, reason: 'not a regular file, directory or symlink', kind: 'special' });
      return undefined;
    }
    stats.files++;
    const cached = cache.lookup(rel, seen);
    if (cached !== undefined) {
      addFile(rel, { hash: cached, key: seen });
      return undefined;
    }
    if (!options.parallelIo && seen.size <= SMALL_FILE) {
      let got: { hash: string; key: StatKey } | null;
      try {
        got = hashSmallSync(abs(rel), rel, seen);
      } catch (e) {
        got = hashFailed(rel, e);
      }
      addFile(rel, got);
      return undefined;
    }
    return pool
      .run(() => hashOne(abs(rel), rel, seen))
      .catch((e: unknown) => hashFailed(rel, e))
      .then((got) => addFile(rel, got));
  };

  /** lstat, then afterStat; a path that vanished is skipped. */
  const statPath = (rel: string, dd: string): Promise<void> | undefined => {
    const unreadable = (e: unknown): undefined => {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined; // vanished during the scan
      throw new ScanUnreadableError(rel, e);
    };
    if (options.parallelIo) {
      return pool.run(() => lstat(abs(rel))).then((st) => afterStat(rel, dd, kindOf(st), keyOf(st)), unreadable);
    }
    let st: Stats | undefined;
    try {
      st = lstatSync(abs(rel), { throwIfNoEntry: false });
    } catch (e) {
      return unreadable(e);
    }
    return st ? afterStat(rel, dd, kindOf(st), keyOf(st)) : undefined;
  };

  /** A symlink in the data tree: an entry with its target, or a warning when the target is refused. */
  /** `restat`: the data directory to decide in when the link was replaced since it was listed (null: it was just lstat'ed). */
  const readLink = (rel: string, restat: string | null): Promise<void> | undefined => {
    const got = (target: string): undefined => {
      const bad = scope.problem({ type: 'link', path: rel, reference: target });
      if (bad) {
        if (!held.has(rel)) warnings.push({ path: rel, reason: `${bad}: ${target}`, kind: 'link' });
        return undefined;
      }
      entries.push(withPrevUser({ type: 'link', path: rel, user: '', reference: target }));
      progress('scan', rel);
      return undefined;
    };
    const failedLink = (e: unknown): Promise<void> | undefined => {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return undefined;
      // replaced by another kind of file since it was listed: decide by its lstat
      if (code === 'EINVAL' && restat !== null) return statPath(rel, restat);
      throw new ScanUnreadableError(rel, e);
    };
    if (options.parallelIo) return pool.run(() => readlink(abs(rel))).then(got, failedLink);
    let target: string;
    try {
      target = readlinkSync(abs(rel));
    } catch (e) {
      return failedLink(e);
    }
    return got(target);
  };

  /**
   * One listed name, already known not to be hidden or ignored; `dd` as in
   * Dir (the data directory of its parent's children). Outside the data
   * directories only directories matter (a data directory may sit at any
   * depth): other files are not looked at, and names are validated from a
   * data directory down, so an odd name in `src/` never blocks a sync.
   */
  const visit = (rel: string, name: string, l: Listing, i: number, dd: string | null): Promise<void> | undefined => {
    const kind = l.kinds[i]!;
    // (scope.dataDirOf(rel) is dd, scope.inDataTree(rel) is dd !== null || name is a data dir)
    const isDataName = dataNames.has(name);
    if (dd !== null || isDataName) {
      // a path the last sync holds as a usable entry passed the name rules when it was read
      const prev = previous?.get(rel);
      const why = prev !== undefined && unusableReason(prev) === null ? null : validateName(rel);
      if (why) {
        if (held.has(rel)) return undefined; // the last sync's entry this dsg cannot use: left alone (see `held`)
        if (heldDirs.has(rel) && kind === Kind.dir) {
          // a refused directory holding such entries: each path beneath is decided on its own
          dirs.push({ rel, dd: dd ?? rel });
          return undefined;
        }
        const nfc = nfcRepair(rel);
        warnings.push(nfc ? { path: rel, reason: why, kind: 'name', nfc } : { path: rel, reason: why, kind: 'name' });
        return undefined;
      }
    }
    if (kind === Kind.dir) {
      dirs.push({ rel, dd: dd ?? (isDataName ? rel : null) });
      return undefined;
    }
    if (dd === null) {
      // A data directory that is a symlink is not followed; left out silently, its
      // files would read as deleted, so it is refused (sync stops) instead.
      if (isDataName && kind === Kind.link)
        warnings.push({
          path: rel,
          reason: 'a data directory that is a symlink is not followed (make it a real directory, or a mount point)',
          kind: 'link',
        });
      else outside.add(rel.length === name.length ? '' : rel.slice(0, rel.length - name.length - 1));
      return undefined; // a file outside the data dirs
    }
    if (kind === Kind.link) return readLink(rel, dd);
    if (kind === Kind.file) return l.stats ? afterStat(rel, dd, kind, keyAt(l.stats, i)) : statPath(rel, dd);
    warnings.push({ path: rel, reason: 'not a regular file, directory or symlink', kind: 'special' });
    return undefined;
  };

  // Files of one tree share few distinct mtime seconds (written together): one string
  // each, from a small memo, instead of formatting (and allocating) per file.
  const mtimes = new Map<number, string>();
  const mtimeText = (mtimeMs: number): string => {
    const sec = recordedMtimeMs(mtimeMs);
    let t = mtimes.get(sec);
    if (t === undefined) {
      t = formatTimestamp(new Date(sec), tz);
      if (mtimes.size >= 4096) mtimes.clear();
      mtimes.set(sec, t);
    }
    return t;
  };

  /** The entry of a hashed file; null: it vanished while being read. */
  const addFile = (rel: string, got: { hash: string; key: StatKey } | null): void => {
    if (got === null) {
      stats.files--;
      return;
    }
    const entry: FileEntry = {
      type: 'file',
      path: rel,
      user: '',
      filesize: got.key.size,
      mtime: mtimeText(got.key.mtimeMs),
      hash: got.hash,
    };
    entries.push(withPrevUser(entry));
    progress('scan', rel);
  };

  // A missing project root must not scan as "everything deleted".
  const rootStat = await lstat(options.root).catch(() => null);
  if (!rootStat?.isDirectory()) {
    throw new NotFoundError(`project root ${JSON.stringify(options.root)} is not a directory`, {
      recoveryHint: 'Run dsg from inside the project (the directory holding .dsgconfig.yml).',
    });
  }
  // From the root: data dirs are found at any depth; hidden names (.dsg, .git,
  // and .dsgconfig.yml, which travels beside the manifest as the original
  // keeps it out of every manifest) are never entered.
  let listing = await list(options.root);
  let parent: Dir = { rel: '', dd: null };
  let lastYield = performance.now();
  let sinceCheck = 0;
  for (;;) {
    const { names } = listing;
    for (let i = 0; i < names.length; i++) {
      const name = names[i]!;
      if (isHidden(name)) continue;
      const rel = parent.rel ? `${parent.rel}/${name}` : name;
      if (isIgnored(rel, name)) continue;
      const work = visit(rel, name, listing, i, parent.dd);
      if (work) await inBackground(work);
      if (++sinceCheck === 512) {
        sinceCheck = 0;
        if (performance.now() - lastYield > 50) {
          await new Promise<void>((resolve) => setImmediate(resolve));
          lastYield = performance.now();
        }
      }
    }
    const next = dirs.pop();
    if (!next) break;
    parent = next;
    try {
      listing = await list(abs(next.rel));
    } catch (e) {
      // vanished, or not ours to read: an unreadable corner outside the data dirs is passed
      // over, unless the last sync holds files beneath it (a data dir nested in it, as in the
      // task layout's tasks/<t>/input): those would read as deleted and be removed everywhere
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') listing = EMPTY;
      else if (next.dd === null && !holdsBeneath(next.rel)) listing = EMPTY;
      else throw new ScanUnreadableError(next.rel, e);
    }
  }
  await Promise.all(pending);
  if (failed) throw failed.e;

  entries.sort((a, b) => comparePaths(a.path, b.path));
  refuseFoldCollisions(entries, warnings);
  warnings.sort((a, b) => comparePaths(a.path, b.path));
  if (options.statCacheFile) {
    cache.dropUnseen(); // rows of files this scan did not find (deleted, now ignored or refused)
    if (cache.dirty) await cache.save(options.statCacheFile);
  }
  progress('scan', undefined, true);
  return { manifest: new Manifest(entries), warnings, stats, outside: outside.result() };
}

/**
 * One directory's names (byte order) with their kinds, and the entries'
 * lstat numbers when the native lister gave them (null: readdir's file
 * types, each file lstat'ed when visited).
 */
type Listing = DirStats | { names: string[]; kinds: Uint8Array; stats: null };

/** A directory with nothing listed. */
const EMPTY: Listing = { names: [], kinds: new Uint8Array(0), stats: null };

/** A listing by file types (readdir's Dirents): each file is lstat'ed when visited. */
const fromDirents = (ds: Dirent[]): Listing => ({
  names: ds.map((d) => d.name),
  kinds: Uint8Array.from(ds, (d) => kindOf(d)),
  stats: null,
});

const keyOf = (st: Stats): StatKey => ({ size: st.size, mtimeMs: st.mtimeMs, ino: st.ino, ctimeMs: st.ctimeMs });

/** Entry i's lstat numbers in a native listing (FIELDS per entry: size, mtimeMs, ino, ctimeMs). */
const keyAt = (stats: Float64Array, i: number): StatKey => ({
  size: stats[i * FIELDS]!,
  mtimeMs: stats[i * FIELDS + 1]!,
  ino: stats[i * FIELDS + 2]!,
  ctimeMs: stats[i * FIELDS + 3]!,
});

const ASCII = /^[^\u0080-\uffff]*$/; // no code unit above U+007F

/**
 * Two entries that differ only by case or Unicode normalization are one file
 * on a case-insensitive client (macOS, Windows): both become warnings (left
 * out, so sync refuses) instead of one silently replacing the other there.
 */
function refuseFoldCollisions(entries: ManifestEntry[], warnings: ScanWarning[]): void {
  // the first path of each key; groups only for keys seen twice (rare)
  const first = new Map<string, string>();
  const groups = new Map<string, string[]>();
  for (const e of entries) {
    // ASCII needs no normalization (and String#normalize is not free on 100k paths)
    const k = ASCII.test(e.path) ? e.path.toLowerCase() : foldKey(e.path);
    const seen = first.get(k);
    if (seen === undefined) first.set(k, e.path);
    else groups.set(k, [...(groups.get(k) ?? [seen]), e.path]);
  }
  if (groups.size === 0) return;
  const bad = new Map<string, string>();
  for (const group of groups.values()) {
    for (const p of group)
      bad.set(
        p,
        `differs only by case or Unicode normalization from ${group
          .filter((q) => q !== p)
          .map((q) => JSON.stringify(q))
          .join(', ')} (one file on macOS and Windows)`,
      );
  }
  if (bad.size === 0) return;
  const kept = entries.filter((e) => !bad.has(e.path));
  entries.splice(0, entries.length, ...kept);
  for (const [p, reason] of bad) warnings.push({ path: p, reason, kind: 'name' });
}
