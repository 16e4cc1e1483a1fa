import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  Manifest,
  STATE_ACTIONS,
  classify,
  classifyPath,
  entriesEqual,
  type ManifestEntry,
  type SyncAction,
  type SyncState,
} from '../src/index.js';

const P = 'input/x.csv';
const file = (hash: string, filesize = 1, mtime = '2025-06-01T10:11:12-07:00', user = 'u'): ManifestEntry => ({
  type: 'file',
  path: P,
  user,
  filesize,
  mtime,
  hash,
});

/** The state the sync-state matrix (docs/ARCHITECTURE.md §3) gives for a presence pattern and the equalities (all entries hashed: transitive). */
function expected(l: number | null, c: number | null, r: number | null): SyncState {
  if (l !== null && c !== null && r !== null) {
    if (l === c && c === r) return 'sLCR__all_eq';
    if (l === c) return 'sLCR__L_eq_C_ne_R';
    if (l === r) return 'sLCR__L_eq_R_ne_C';
    if (c === r) return 'sLCR__C_eq_R_ne_L';
    return 'sLCR__all_ne';
  }
  if (l === null && c !== null && r !== null) return c === r ? 'sxLCR__C_eq_R' : 'sxLCR__C_ne_R';
  if (l !== null && c === null && r !== null) return l === r ? 'sLxCR__L_eq_R' : 'sLxCR__L_ne_R';
  if (l !== null && c !== null && r === null) return l === c ? 'sLCxR__L_eq_C' : 'sLCxR__L_ne_C';
  if (r !== null) return 'sxLCxR__only_R';
  if (c !== null) return 'sxLCRx__only_C';
  if (l !== null) return 'sLxCxR__only_L';
  return 'sxLxCxR__none';
}

const hashes = ['1111111111111111', '2222222222222222', '3333333333333333'];
const version = fc.option(fc.integer({ min: 0, max: 2 }), { nil: null });
const manifestOf = (e?: ManifestEntry): Manifest => new Manifest(e ? [e] : []);

/** What a state becomes when L and R swap roles. */
const MIRROR: Record<SyncState, SyncState> = {
  sLCR__all_eq: 'sLCR__all_eq',
  sLCR__L_eq_C_ne_R: 'sLCR__C_eq_R_ne_L',
  sLCR__C_eq_R_ne_L: 'sLCR__L_eq_C_ne_R',
  sLCR__L_eq_R_ne_C: 'sLCR__L_eq_R_ne_C',
  sLCR__all_ne: 'sLCR__all_ne',
  sxLCR__C_eq_R: 'sLCxR__L_eq_C',
  sLCxR__L_eq_C: 'sxLCR__C_eq_R',
  sxLCR__C_ne_R: 'sLCxR__L_ne_C',
  sLCxR__L_ne_C: 'sxLCR__C_ne_R',
  sLxCR__L_eq_R: 'sLxCR__L_eq_R',
  sLxCR__L_ne_R: 'sLxCR__L_ne_R',
  sxLCxR__only_R: 'sLxCxR__only_L',
  sLxCxR__only_L: 'sxLCxR__only_R',
  sxLCRx__only_C: 'sxLCRx__only_C',
  sxLxCxR__none: 'sxLxCxR__none',
};
const MIRROR_ACTION: Record<SyncAction, SyncAction> = {
  none: 'none',
  upload: 'download',
  download: 'upload',
  delete_local: 'delete_remote',
  delete_remote: 'delete_local',
  cache_only: 'cache_only',
  conflict: 'conflict',
};

describe('classify: the 15-state matrix', () => {
  it('every present/absent/equal/different combination maps to exactly the table state', () => {
    fc.assert(
      fc.property(version, version, version, (l, c, r) => {
        const e = (v: number | null): ManifestEntry | undefined => (v === null ? undefined : file(hashes[v] as string));
        const plans = classify(manifestOf(e(l)), manifestOf(e(c)), manifestOf(e(r)));
        if (l === null && c === null && r === null) {
          expect(plans).toEqual([]);
          expect(classifyPath()).toBe('sxLxCxR__none');
          return;
        }
        expect(plans).toHaveLength(1);
        const [p] = plans;
        expect(p?.state).toBe(expected(l, c, r));
        expect(p?.action).toBe(STATE_ACTIONS[expected(l, c, r)]);
        expect(p?.local !== undefined).toBe(l !== null);
        expect(p?.cache !== undefined).toBe(c !== null);
        expect(p?.remote !== undefined).toBe(r !== null);
      }),
    );
  });

  it('all 15 states are reachable and each has its matrix action', () => {
    const seen = new Set<SyncState>();
    for (const l of [null, 0, 1, 2])
      for (const c of [null, 0, 1, 2]) for (const r of [null, 0, 1, 2]) seen.add(expected(l, c, r));
    expect(seen.size).toBe(15);
    expect(STATE_ACTIONS).toMatchObject({
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
    });
  });

  // Entries drawn from a small domain so that hash-less entries (size+mtime
  // equality, not transitive) and file/link mixes occur often.
  const anyEntry = fc.option(
    fc.oneof(
      fc
        .record({
          hash: fc.constantFrom('', ...hashes.slice(0, 2)),
          size: fc.integer({ min: 1, max: 2 }),
          mtime: fc.constantFrom('2025-06-01T10:11:12-07:00', '2025-06-01T17:11:12+00:00', '2025-06-01T10:11:13-07:00'),
          user: fc.constantFrom('a', 'b'),
        })
        .map(({ hash, size, mtime, user }) => file(hash, size, mtime, user)),
      fc
        .constantFrom('../x', '../y')
        .map((reference): ManifestEntry => ({ type: 'link', path: P, user: 'u', reference })),
    ),
    { nil: undefined },
  );

  it('L↔R swapped inputs give the mirrored state and action (upload↔download, delete_local↔delete_remote)', () => {
    fc.assert(
      fc.property(anyEntry, anyEntry, anyEntry, (l, c, r) => {
        const s = classifyPath(l, c, r);
        const m = classifyPath(r, c, l);
        expect(m).toBe(MIRROR[s]);
        expect(STATE_ACTIONS[m]).toBe(MIRROR_ACTION[STATE_ACTIONS[s]]);
      }),
      { numRuns: 2000 },
    );
  });

  it('user never affects equality; hash wins over size/mtime; instants not strings', () => {
    expect(entriesEqual(file('1111111111111111', 1, undefined, 'a'), file('1111111111111111', 9, undefined, 'b'))).toBe(
      true,
    );
    expect(entriesEqual(file('1111111111111111'), file('2222222222222222'))).toBe(false);
    expect(entriesEqual(file(''), file('2222222222222222'))).toBe(true);
    expect(entriesEqual(file('', 1, '2025-06-01T10:11:12-07:00'), file('', 1, '2025-06-01T17:11:12+00:00'))).toBe(true);
    expect(entriesEqual(file('', 1), file('', 2))).toBe(false);
    expect(entriesEqual(file(''), { type: 'link', path: P, user: 'u', reference: '../x' })).toBe(false);
  });

  it('plans are sorted by path byte-wise over the union of the three manifests', () => {
    const mk = (p: string): ManifestEntry => ({ ...file('1111111111111111'), path: p });
    const L = new Manifest([mk('input/b'), mk('input/\u{1F600}')]);
    const C = new Manifest([mk('input/a')]);
    const R = new Manifest([mk('input/\uFFFD'), mk('input/b')]);
    expect(classify(L, C, R).map((p) => [p.path, p.state])).toEqual([
      ['input/a', 'sxLCRx__only_C'],
      ['input/b', 'sLxCR__L_eq_R'],
      ['input/\uFFFD', 'sxLCxR__only_R'],
      ['input/\u{1F600}', 'sLxCxR__only_L'],
    ]);
  });
});
