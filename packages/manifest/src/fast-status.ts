/**
 * The status fast path: whether the working tree is exactly its last sync,
 * proved without building an object per entry. The everyday `dsg status`
 * (and `--offline`) on an unchanged tree spent most of its time building
 * the scan's entries, the last sync's and the plan's — 100k objects each —
 * and collecting them. Here the last sync is read as columns of its mirror
 * (`MirrorColumns`), the stat cache as columns (`StatColumns`, rows in path
 * order), and the walk visits the tree in the same path order and
 * merge-joins against both, comparing strings in place.
 *
 * It answers true only when the full scan and three-way classification
 * would find nothing but `none` for every entry and no warning: every last
 * sync entry is a usable regular file (the mirror holds only usable
 * entries) found at its path, in a data directory, with a stat cache row
 * whose size, mtime, inode and ctime still match and whose hash is the last
 * sync's; no path was added, removed, refused, ignored anew or replaced; no
 * two paths differ only by case or normalization; the stat cache has no
 * other row (the scan would drop and rewrite it). Anything else — a changed
 * file, a new or removed one, a link, a stale cache row, rows out of order,
 * a name to validate that fails — answers false, and the caller runs the
 * full scan, which gives the answer (and hashes, and rewrites the cache) as
 * always. It reads only: it never writes the stat cache or anything else
 * (its listings, when asked for, are the caller's to record).
 */
import path from 'node:path';
import type { ProgressListener } from '@dsg/contracts';
import { FIELDS, Kind, listDir, type DirStats, type ListedDir } from '@dsg/dirstat';
import type { MirrorColumns } from './manifest-mirror.js';
import { validateName } from './names.js';
import { comparePaths } from './order.js';
import { ignoreRule } from './scan.js';
import { foldKey, isHidden, projectScope } from './scope.js';
import { readStatColumns, type StatColumns } from './stat-cache.js';
import type { OutsideDataCounter } from './outside-data.js';

/**
 * How long the walk runs before it yields to the event loop. Far shorter than
 * the scan's 50 ms: `dsg status` walks while its connection opens, and each
 * step of an SSH handshake (and of loading its module) waits for a yield. On
 * the bench's w13, 50 ms slices left the whole handshake for after the walk;
 * 1 ms instead of 5 made the no-change status over SSH 60–70 ms faster (0.76
 * vs 0.83 s) and the offline one no slower (the walk's time is in the
 * listings, a yield costs microseconds).
 */
const YIELD_MS = 1;

export interface FastStatusOptions {
  root: string;
  dataDirs: string[];
  ignore?: { names?: string[]; suffixes?: string[]; paths?: string[] };
  statCacheFile: string;
  /** the last sync, read as columns of its mirror */
  last: MirrorColumns;
  /** counts the files outside the data dirs on the way (as the scan does); complete only when the answer is true */
  outside?: OutsideDataCounter;
  onProgress?: ProgressListener;
  /**
   * Filled with every listing the walk made, the data files it matched marked
   * `checked` (what a walk record keeps: see walk-record.ts); `complete` turns
   * false when a directory could not be listed. Whole only when the answer is true.
   */
  listed?: { dirs: ListedDir[]; complete: boolean };
}

/** Whether text[at, at+len) is `a` (startsWith compares in V8's builtin, not char by char in JS). */
const sameAs = (a: string, text: string, at: number, len: number): boolean =>
  a.length === len && text.startsWith(a, at);

/** Whether text[a, a+len) and text2[b, b+len) hold the same characters. */
function sameIn(text: string, a: number, text2: string, b: number, len: number): boolean {
  for (let i = 0; i < len; i++) if (text.charCodeAt(a + i) !== text2.charCodeAt(b + i)) return false;
  return true;
}

/**
 * Whether no two of the last sync's paths differ only by case or Unicode
 * normalization (such twins are held back or refused by the full path).
 * Paths of lowercase ASCII alone cannot be twins: checked on the text first.
 */
function twinFree(c: MirrorColumns): boolean {
  let plain = true;
  for (let i = 0; i < c.n && plain; i++) {
    const at = c.pathAt[i]!;
    for (let k = at; k < at + c.pathLength[i]!; k++) {
      const u = c.text.charCodeAt(k);
      if (u >= 0x80 || (u >= 0x41 && u <= 0x5a)) {
        plain = false;
        break;
      }
    }
  }
  if (plain) return true;
  const keys = new Set<string>();
  for (let i = 0; i < c.n; i++) keys.add(foldKey(c.text.slice(c.pathAt[i], c.pathAt[i]! + c.pathLength[i]!)));
  return keys.size === c.n;
}

/**
 * Whether the working tree is its last sync, entry for entry, as the full
 * scan and classification would find (see the module comment); false: not
 * proved, use the full path.
 */
export async function treeIsLastSync(o: FastStatusOptions): Promise<boolean> {
  const c = o.last;
  // every entry a file with a hash, and no twins. That the entries are in path order, without
  // duplicates, and hold no config entry (an older dsg's) needs no pass of its own: the walk meets
  // data files in strictly increasing path order, never the config file, and must match every entry
  for (let i = 0; i < c.n; i++) if (c.isFile[i] !== 1 || c.hashLength[i] !== 16) return false;
  if (!twinFree(c)) return false;
  const s: StatColumns | null = readStatColumns(o.statCacheFile);
  if (!s) return false;

  const scope = projectScope(o.dataDirs);
  const dataNames = new Set(scope.dataDirs);
  const isIgnored = ignoreRule(o);
  const rootPrefix = path.join(o.root, '/');
  let ci = 0; // next last-sync entry
  let si = 0; // next stat cache row
  let files = 0;
  let lastEmit = 0;
  let lastYield = performance.now();
  let sinceCheck = 0;

  /** A directory's entries with their lstat, in one call (native where it can be). */
  const list = (rel: string): DirStats | null => {
    try {
      return listDir(rel ? rootPrefix + rel : o.root);
    } catch {
      return null;
    }
  };
  /**
   * A listing's visible, not ignored children in path order: a directory sorts as its name + '/' (its
   * paths' prefix). The listing comes in name order already; only a directory next to a sibling that
   * extends its name with a character below '/' (`a` and `a.b`) needs the sort.
   */
  const children = (rel: string, l: DirStats): { i: number; rel: string; key: string }[] => {
    const out: { i: number; rel: string; key: string }[] = [];
    let inOrder = true;
    for (let i = 0; i < l.names.length; i++) {
      const name = l.names[i]!;
      if (isHidden(name)) continue;
      const r = rel ? `${rel}/${name}` : name;
      if (isIgnored(r, name)) continue;
      const key = l.kinds[i] === Kind.dir ? `${name}/` : name;
      if (inOrder && out.length > 0 && comparePaths(out[out.length - 1]!.key, key) >= 0) inOrder = false;
      out.push({ i, rel: r, key });
    }
    return inOrder ? out : out.sort((a, b) => comparePaths(a.key, b.key));
  };

  /** One data file (entry `i` of listing `l`): the next last-sync entry and the next stat cache row must be its own and still match. */
  const file = (rel: string, l: DirStats, i: number): boolean => {
    if (ci >= c.n || !sameAs(rel, c.text, c.pathAt[ci]!, c.pathLength[ci]!)) return false;
    if (si >= s.n || !sameAs(rel, s.paths, s.pathAt[si]!, s.pathLength[si]!)) return false;
    const at = i * FIELDS; // size, mtimeMs, ino, ctimeMs, as fs.Stats has them
    if (s.sizes[si] !== l.stats[at] || s.mtimes[si] !== l.stats[at + 1] || s.inos[si] !== l.stats[at + 2]) return false;
    if (s.ctimes[si] !== l.stats[at + 3]) return false; // NaN (no ctime known) never matches: the scan decides
    if (!sameIn(s.hashText, 16 * si, c.text, c.hashAt[ci]!, 16)) return false;
    ci++;
    si++;
    files++;
    if (o.onProgress) {
      const now = Date.now();
      if (now - lastEmit >= 100) {
        lastEmit = now;
        o.onProgress({ phase: 'scan', files, hashedFiles: 0, bytes: 0, path: rel });
      }
    }
    return true;
  };

  /** A directory's subtree; `dd` as in the scan: the data directory its children are in (null: none). */
  const walk = async (rel: string, dd: string | null): Promise<boolean> => {
    const l = list(rel);
    if (l === null) {
      if (o.listed) o.listed.complete = false; // a record could not tell this corner's state
      return dd === null && rel !== ''; // an unreadable corner outside the data: the scan skips it too
    }
    const checked = o.listed ? new Uint8Array(l.names.length) : null;
    if (checked && o.listed) o.listed.dirs.push({ rel, list: l, checked });
    for (const { i, rel: r } of children(rel, l)) {
      const name = l.names[i]!;
      const kind = l.kinds[i];
      const isDataName = dataNames.has(name);
      // gone since the listing, or a name no string can reach: the scan tells what to make of it
      if (kind === Kind.gone || kind === Kind.undecodable) return false;
      if (kind === Kind.dir) {
        // a directory in the data tree is validated by the scan (it is never a last-sync entry)
        if ((dd !== null || isDataName) && validateName(r)) return false;
        if (!(await walk(r, dd ?? (isDataName ? r : null)))) return false;
      } else if (dd === null) {
        if (isDataName && (validateName(r) || kind === Kind.link)) return false; // refused by the scan
        o.outside?.add(rel);
      } else if (kind !== Kind.file || !file(r, l, i))
        return false; // links, special files, changes: the full path
      else if (checked) checked[i] = 1;
      if (++sinceCheck === 128) {
        sinceCheck = 0;
        if (performance.now() - lastYield > YIELD_MS) {
          // signals, a progress display's timers, a connection's traffic
          await new Promise<void>((resolve) => setImmediate(resolve));
          lastYield = performance.now();
        }
      }
    }
    return true;
  };

  if (!(await walk('', null))) return false;
  if (ci !== c.n || si !== s.n) return false; // removed files, or cache rows the scan would drop
  o.onProgress?.({ phase: 'scan', files, hashedFiles: 0, bytes: 0 });
  return true;
}
