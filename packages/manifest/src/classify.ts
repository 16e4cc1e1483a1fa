import type { Manifest, ManifestEntry } from './model.js';
import { comparePaths } from './order.js';

export type SyncState =
  | 'sLCR__all_eq'
  | 'sLCR__L_eq_C_ne_R'
  | 'sLCR__L_eq_R_ne_C'
  | 'sLCR__C_eq_R_ne_L'
  | 'sLCR__all_ne'
  | 'sxLCR__C_eq_R'
  | 'sxLCR__C_ne_R'
  | 'sLxCR__L_eq_R'
  | 'sLxCR__L_ne_R'
  | 'sLCxR__L_eq_C'
  | 'sLCxR__L_ne_C'
  | 'sxLCxR__only_R'
  | 'sxLCRx__only_C'
  | 'sLxCxR__only_L'
  | 'sxLxCxR__none';

export type SyncAction = 'none' | 'upload' | 'download' | 'delete_local' | 'delete_remote' | 'cache_only' | 'conflict';

export interface PathPlan {
  path: string;
  state: SyncState;
  action: SyncAction;
  local?: ManifestEntry;
  cache?: ManifestEntry;
  remote?: ManifestEntry;
}

/** The action of each state: the sync-state matrix (docs/ARCHITECTURE.md §3), the original's table. */
export const STATE_ACTIONS: Readonly<Record<SyncState, SyncAction>> = {
  sLCR__all_eq: 'none',
  sLCR__L_eq_C_ne_R: 'download',
  sLCR__L_eq_R_ne_C: 'cache_only',
  sLCR__C_eq_R_ne_L: 'upload',
  sLCR__all_ne: 'conflict',
  sxLCR__C_eq_R: 'delete_remote',
  sxLCR__C_ne_R: 'conflict',
  sLxCR__L_eq_R: 'cache_only',
  sLxCR__L_ne_R: 'conflict',
  sLCxR__L_eq_C: 'delete_local',
  sLCxR__L_ne_C: 'conflict',
  sxLCxR__only_R: 'download',
  sxLCRx__only_C: 'cache_only',
  sLxCxR__only_L: 'upload',
  sxLxCxR__none: 'none',
};

function sameInstant(a: string, b: string): boolean {
  if (a === b) return true;
  const x = Date.parse(a);
  const y = Date.parse(b);
  return !Number.isNaN(x) && x === y;
}

/**
 * Entry equality (docs/ARCHITECTURE.md §2 "Manifest"): files by hash
 * when both have one, else by size and mtime instant; links by reference.
 * The user field never counts.
 */
export function entriesEqual(a: ManifestEntry, b: ManifestEntry): boolean {
  if (a.type === 'file' && b.type === 'file') {
    if (a.hash && b.hash) return a.hash === b.hash;
    return a.filesize === b.filesize && sameInstant(a.mtime, b.mtime);
  }
  if (a.type === 'link' && b.type === 'link') return a.reference === b.reference;
  return false;
}

/** Own fields of an entry, counted without making an array of them (this runs once per scanned file). */
function fieldCount(e: object): number {
  let n = 0;
  for (const k in e) if (Object.hasOwn(e, k)) n++;
  return n;
}

/**
 * The same entry field for field, with no fields beyond the format's (so
 * either object can stand for the other, `user` and any unknown field
 * included). The scanner gives an unchanged file the last sync's entry
 * object itself: at 100k entries a second copy of every entry was a fifth
 * of a sync's peak memory.
 */
export function identicalEntry(a: ManifestEntry, b: ManifestEntry): boolean {
  if (a.type === 'file' && b.type === 'file') {
    return (
      a.path === b.path &&
      a.hash === b.hash &&
      a.filesize === b.filesize &&
      a.mtime === b.mtime &&
      a.user === b.user &&
      fieldCount(a) === 6 &&
      fieldCount(b) === 6
    );
  }
  if (a.type === 'link' && b.type === 'link') {
    return (
      a.path === b.path &&
      a.reference === b.reference &&
      a.user === b.user &&
      fieldCount(a) === 4 &&
      fieldCount(b) === 4
    );
  }
  return false;
}

/**
 * The state of one path from which of L, C, R hold it. Equality without
 * hashes (size+mtime) need not be transitive; the two intransitive
 * combinations are resolved symmetrically in L and R: L=R (both equal to C
 * or not) → cache only; L≠R while both equal C → conflict.
 */
export function classifyPath(local?: ManifestEntry, cache?: ManifestEntry, remote?: ManifestEntry): SyncState {
  if (local && cache && remote) {
    const lc = entriesEqual(local, cache);
    const lr = entriesEqual(local, remote);
    const cr = entriesEqual(cache, remote);
    if (lc && lr && cr) return 'sLCR__all_eq';
    if (lr) return 'sLCR__L_eq_R_ne_C';
    if (lc && cr) return 'sLCR__all_ne';
    if (lc) return 'sLCR__L_eq_C_ne_R';
    if (cr) return 'sLCR__C_eq_R_ne_L';
    return 'sLCR__all_ne';
  }
  if (!local && cache && remote) return entriesEqual(cache, remote) ? 'sxLCR__C_eq_R' : 'sxLCR__C_ne_R';
  if (local && !cache && remote) return entriesEqual(local, remote) ? 'sLxCR__L_eq_R' : 'sLxCR__L_ne_R';
  if (local && cache && !remote) return entriesEqual(local, cache) ? 'sLCxR__L_eq_C' : 'sLCxR__L_ne_C';
  if (remote) return 'sxLCxR__only_R';
  if (cache) return 'sxLCRx__only_C';
  if (local) return 'sLxCxR__only_L';
  return 'sxLxCxR__none';
}

/** A manifest's paths in comparePaths order; its own order when it already is (every manifest dsg writes or scans). */
function sortedPaths(m: Manifest): string[] {
  const keys = [...m.entries.keys()];
  for (let i = 1; i < keys.length; i++) if (comparePaths(keys[i - 1]!, keys[i]!) >= 0) return keys.sort(comparePaths);
  return keys;
}

/** Entries classified beside a manifest's own, without copying the manifest (e.g. `.dsgconfig.yml`, never an entry). */
export interface ClassifyExtra {
  local?: readonly ManifestEntry[];
  cache?: readonly ManifestEntry[];
  remote?: readonly ManifestEntry[];
}

interface Side {
  paths: string[];
  get(p: string): ManifestEntry | undefined;
}

/** A manifest's sorted paths and lookup, with `extra` entries added (an extra entry wins over the manifest's own). */
function side(m: Manifest, extra: readonly ManifestEntry[] | undefined, shared?: Side): Side {
  if (!extra?.length) return shared ?? { paths: sortedPaths(m), get: (p) => m.entries.get(p) };
  const more = new Map(extra.map((e) => [e.path, e]));
  const paths = [...new Set([...m.entries.keys(), ...more.keys()])].sort(comparePaths);
  return { paths, get: (p) => more.get(p) ?? m.entries.get(p) };
}

/**
 * The plan of every path present in any of the three manifests (and
 * `extra`), sorted by path: a merge of the three sorted path lists (no set of
 * all paths, no sort of it, no copy of a manifest for an extra entry: at 100k
 * entries those were most of what classifying allocated).
 */
export function classify(local: Manifest, cache: Manifest, remote: Manifest, extra: ClassifyExtra = {}): PathPlan[] {
  const ls = side(local, extra.local);
  const cs = side(cache, extra.cache, cache === local && !extra.local?.length ? ls : undefined);
  const rs = side(
    remote,
    extra.remote,
    remote === cache && !extra.cache?.length ? cs : remote === local && !extra.local?.length ? ls : undefined,
  );
  const [lk, ck, rk] = [ls.paths, cs.paths, rs.paths];
  const out: PathPlan[] = [];
  let i = 0;
  let j = 0;
  let k = 0;
  for (;;) {
    let p = lk[i];
    const c = ck[j];
    const r = rk[k];
    if (c !== undefined && (p === undefined || comparePaths(c, p) < 0)) p = c;
    if (r !== undefined && (p === undefined || comparePaths(r, p) < 0)) p = r;
    if (p === undefined) break;
    const l = lk[i] === p ? ls.get(lk[i++]!) : undefined;
    const cc = ck[j] === p ? cs.get(ck[j++]!) : undefined;
    const rr = rk[k] === p ? rs.get(rk[k++]!) : undefined;
    out.push(pathPlan(p, classifyPath(l, cc, rr), l, cc, rr));
  }
  return out;
}

/**
 * One PathPlan with the sides it has as properties of its literal: added one
 * by one they would go to a separate property store (4 MB more at 100k
 * paths). Absent sides stay absent, not `undefined`.
 */
function pathPlan(path: string, state: SyncState, l?: ManifestEntry, c?: ManifestEntry, r?: ManifestEntry): PathPlan {
  const action = STATE_ACTIONS[state];
  if (l && c && r) return { path, state, action, local: l, cache: c, remote: r };
  if (l && c) return { path, state, action, local: l, cache: c };
  if (l && r) return { path, state, action, local: l, remote: r };
  if (c && r) return { path, state, action, cache: c, remote: r };
  if (l) return { path, state, action, local: l };
  if (c) return { path, state, action, cache: c };
  if (r) return { path, state, action, remote: r };
  return { path, state, action };
}
