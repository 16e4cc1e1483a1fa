import { closeSync, fstatSync, lstatSync, openSync, readSync, readdirSync, readlinkSync, type Stats } from 'node:fs';
import { lstat, open, readdir, readlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { DsgError, NotFoundError, Semaphore, type ProgressListener } from '@dsg/contracts';
import { entriesEqual } from './classify.js';
import { isConflictBackup } from './conflicts.js';
import { HASH_CHUNK, createXxh3Hasher, hashFileHandle } from './hash.js';
import { Manifest, type FileEntry, type ManifestEntry } from './model.js';
import { nfcRepair, validateName } from './names.js';
import { foldKey, isHidden, projectScope } from './scope.js';
import { comparePaths } from './order.js';
import { StatCache, type StatKey } from './stat-cache.js';
import { formatTimestamp, recordedMtimeMs } from './timestamp.js';
import { unusableReason } from './unusable.js';

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

/** A synchronous call as a promise, so both metadata modes share one code path. */
// eslint-disable-next-line @typescript-eslint/require-await -- async turns a synchronous throw into a rejection
async function sync<T>(fn: () => T): Promise<T> {
  return fn();
}

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
 * Scan the project's data directories into a
 * manifest without metadata: entries sorted by path, files hashed (or taken
 * from the stat cache), links recorded with their relative targets. Refused
 * names and links become warnings and are left out.
 */
export async function scanProject(options: ScanOptions): Promise<ScanResult> {
  const tz = options.timeZone;
  const names = new Set(options.ignore?.names ?? DEFAULT_IGNORE.names);
  const suffixes = options.ignore?.suffixes ?? DEFAULT_IGNORE.suffixes;
  // `input/tmp/` and `input/tmp` name the same directory
  const ignoredPaths = new Set((options.ignore?.paths ?? DEFAULT_IGNORE.paths).map((p) => p.replace(/\/+$/, '')));
  // the stat cache never records itself, wherever the caller keeps it
  if (options.statCacheFile) {
    const rel = path.relative(options.root, options.statCacheFile);
    if (rel && !rel.startsWith('..') && !path.isAbsolute(rel)) ignoredPaths.add(rel.split(path.sep).join('/'));
  }
  // validates the data dirs before anything is read
  const scope = projectScope(options.dataDirs);
  const pool = new Semaphore(options.concurrency ?? 16);
  const meta = options.parallelIo
    ? {
        lstat: (f: string) => pool.run(() => lstat(f)),
        readdir: (f: string) => pool.run(() => readdir(f)),
        readlink: (f: string) => pool.run(() => readlink(f)),
      }
    : {
        lstat: (f: string): Promise<Stats> => sync(() => lstatSync(f)),
        readdir: (f: string): Promise<string[]> => sync(() => readdirSync(f)),
        readlink: (f: string): Promise<string> => sync(() => readlinkSync(f)),
      };
  const openFile = options.openFile ?? ((f: string) => open(f, 'r'));
  const openFileSync = options.openFileSync ?? ((f: string) => openSync(f, 'r'));
  const smallBuf = Buffer.allocUnsafe(HASH_CHUNK);
  const cache = await StatCache.load(options.statCacheFile);
  const scanStartMs = Date.now();
  const buffers: Buffer[] = []; // one hashing buffer per concurrent hash, reused

  const entries: ManifestEntry[] = [];
  const warnings: ScanWarning[] = [];
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

  const isIgnored = (rel: string, name: string): boolean =>
    names.has(name) || suffixes.some((s) => name.endsWith(s)) || ignoredPaths.has(rel) || isConflictBackup(name);

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

  const withPrevUser = (e: ManifestEntry): ManifestEntry => {
    const prev = options.previous?.entries.get(e.path);
    e.user = prev && entriesEqual(prev, e) ? prev.user : options.user;
    return e;
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
    const after: StatKey = { size: st.size, mtimeMs: st.mtimeMs, ino: st.ino };
    if (bytes === after.size && after.size === key.size && after.mtimeMs === key.mtimeMs) {
      if (scanStartMs - key.mtimeMs > RACY_MS) cache.set(rel, key, hash);
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

  // Without parallelIo the tree is walked depth-first, one child after another. Visiting
  // every child of every directory at once (Promise.all) kept all pending visits of a
  // 100k-file tree alive together — frames, Stats, keys — ~250 MiB of heap that outlived
  // the young generation. Files above SMALL_FILE are still hashed in parallel: their
  // hashing runs in the background, at most 2 × pool size at a time.
  const poolSize = options.concurrency ?? 16;
  const pending = new Set<Promise<void>>();
  let failed = null as { e: unknown } | null; // set from the background hashes
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
  const visitAll = async (rels: string[]): Promise<void> => {
    if (options.parallelIo) {
      await Promise.all(rels.map((r) => visit(r)));
      return;
    }
    for (const r of rels) await visit(r);
  };

  /**
   * One path (file, link or directory), already known not to be ignored or
   * hidden. Outside the data directories only directories matter (a data
   * directory may sit at any depth): other files are not looked at, and
   * names are validated from a data directory down, so an odd name in
   * `src/` never blocks a sync.
   */
  const visit = async (rel: string): Promise<void> => {
    const data = scope.dataDirOf(rel) !== null || scope.inDataTree(rel);
    if (data) {
      const why = validateName(rel);
      if (why) {
        if (held.has(rel)) return; // the last sync's entry this dsg cannot use: left alone (see `held`)
        if (heldDirs.has(rel) && (await meta.lstat(path.join(options.root, rel)).catch(() => null))?.isDirectory()) {
          // a refused directory holding such entries: each path beneath is decided on its own
          const children = await meta.readdir(path.join(options.root, rel)).catch((e: unknown) => {
            if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
            throw new ScanUnreadableError(rel, e);
          });
          await visitAll(
            children.filter((n) => !isHidden(n) && !isIgnored(`${rel}/${n}`, n)).map((n) => `${rel}/${n}`),
          );
          return;
        }
        const nfc = nfcRepair(rel);
        warnings.push(nfc ? { path: rel, reason: why, kind: 'name', nfc } : { path: rel, reason: why, kind: 'name' });
        return;
      }
    }
    const full = path.join(options.root, rel);
    const st = await meta.lstat(full).catch((e: unknown) => {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null; // vanished during the scan
      if (!data) return null; // not ours to read: an unreadable corner of the project outside the data dirs
      throw new ScanUnreadableError(rel, e);
    });
    if (!st) return;
    if (st.isDirectory()) {
      const children = await meta.readdir(full).catch((e: unknown) => {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT' || !scope.inDataTree(rel)) return [];
        throw new ScanUnreadableError(rel, e);
      });
      await visitAll(children.filter((n) => !isHidden(n) && !isIgnored(`${rel}/${n}`, n)).map((n) => `${rel}/${n}`));
      return;
    }
    if (scope.dataDirOf(rel) === null) {
      // A data directory that is a symlink is not followed; left out silently, its
      // files would read as deleted, so it is refused (sync stops) instead.
      if (st.isSymbolicLink() && data)
        warnings.push({
          path: rel,
          reason: 'a data directory that is a symlink is not followed (make it a real directory, or a mount point)',
          kind: 'link',
        });
      return; // a file outside the data dirs
    }
    if (st.isSymbolicLink()) {
      const target = await meta.readlink(full).catch((e: unknown) => {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
        throw new ScanUnreadableError(rel, e);
      });
      if (target === null) return;
      const bad = scope.problem({ type: 'link', path: rel, reference: target });
      if (bad) {
        if (!held.has(rel)) warnings.push({ path: rel, reason: `${bad}: ${target}`, kind: 'link' });
        return;
      }
      entries.push(withPrevUser({ type: 'link', path: rel, user: '', reference: target }));
      progress('scan', rel);
      return;
    }
    if (!st.isFile()) {
      warnings.push({ path: rel, reason: 'not a regular file, directory or symlink', kind: 'special' });
      return;
    }
    stats.files++;
    const seen: StatKey = { size: st.size, mtimeMs: st.mtimeMs, ino: st.ino };
    const cached = cache.lookup(rel, seen);
    if (cached !== undefined) {
      addFile(rel, { hash: cached, key: seen });
      return;
    }
    const hashed = (
      !options.parallelIo && seen.size <= SMALL_FILE
        ? sync(() => hashSmallSync(full, rel, seen))
        : pool.run(() => hashOne(full, rel, seen))
    )
      .catch((e: unknown) => {
        if (e instanceof DsgError) throw e;
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null; // deleted during the scan
        throw new ScanUnreadableError(rel, e);
      })
      .then((got) => addFile(rel, got));
    if (options.parallelIo || seen.size <= SMALL_FILE) await hashed;
    else await inBackground(hashed);
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
      mtime: formatTimestamp(new Date(recordedMtimeMs(got.key.mtimeMs)), tz),
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
  const top = await meta.readdir(options.root);
  await visitAll(top.filter((n) => !isHidden(n) && !isIgnored(n, n)));
  await Promise.all(pending);
  if (failed) throw failed.e;

  entries.sort((a, b) => comparePaths(a.path, b.path));
  refuseFoldCollisions(entries, warnings);
  warnings.sort((a, b) => comparePaths(a.path, b.path));
  if (options.statCacheFile) {
    cache.retain(new Set(entries.map((e) => e.path)));
    if (cache.dirty) await cache.save(options.statCacheFile);
  }
  progress('scan', undefined, true);
  return { manifest: new Manifest(entries), warnings, stats };
}

/**
 * Two entries that differ only by case or Unicode normalization are one file
 * on a case-insensitive client (macOS, Windows): both become warnings (left
 * out, so sync refuses) instead of one silently replacing the other there.
 */
function refuseFoldCollisions(entries: ManifestEntry[], warnings: ScanWarning[]): void {
  const byKey = new Map<string, string[]>();
  for (const e of entries) {
    const k = foldKey(e.path);
    byKey.set(k, [...(byKey.get(k) ?? []), e.path]);
  }
  const bad = new Map<string, string>();
  for (const group of byKey.values()) {
    if (group.length < 2) continue;
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
