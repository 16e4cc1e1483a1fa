import { foldKey, Manifest, unusableReason, type ManifestEntry, type Scope } from '@dsg/manifest';

/**
 * A repository entry this client never writes: out of its scope, an unsafe
 * link, a case/normalization twin, or an entry another tool recorded that
 * this dsg cannot use (read leniently: a refused name, link target, mtime or
 * hash — `unusableReason`).
 */
export interface HeldBack {
  path: string;
  reason: string;
}

export interface Partition {
  /** L, C and R without the held-back paths: what the three-way comparison sees */
  local: Manifest;
  cache: Manifest;
  remote: Manifest;
  /** R's entries at held-back paths: carried into the next snapshot untouched */
  carried: ManifestEntry[];
  heldBack: HeldBack[];
  /** local entries that would become one file with a different repository entry on a case-insensitive client */
  localTwins: { path: string; reason: string }[];
}

const without = (m: Manifest, drop: ReadonlySet<string>): Manifest => {
  if (drop.size === 0) return m;
  let hit = false;
  for (const p of drop) if (m.entries.has(p)) hit = true;
  if (!hit) return m;
  return new Manifest(
    [...m.entries.values()].filter((e) => !drop.has(e.path)),
    m.metadata,
  );
};

/**
 * The trust boundary of a sync: the repository's content decides nothing
 * about where this client writes. Every R entry that the scope refuses
 * (outside the data directories, inside `.git`/`.dsg`, a link that fails the
 * write rule), that the manifest reader marked unusable (another tool's
 * entry breaking our rules: kept as read), or that differs from another R
 * entry only by case or Unicode normalization is held back: left out of L, C
 * and R alike, so it is never downloaded, never deleted (neither here nor in
 * the repository), and R's entry is carried into the next snapshot as it is,
 * field for field. Each is reported.
 */
export function partitionByScope(local: Manifest, cache: Manifest, remote: Manifest, scope: Scope): Partition {
  const held = new Map<string, string>();
  // the paths of each case/NFC-folded key: one path as itself, an array only for twins (an array per
  // entry was 100k arrays of garbage at 100k entries)
  const byKey = new Map<string, string | string[]>();
  for (const e of remote.entries.values()) {
    const why =
      unusableReason(e) ??
      scope.problem(e.type === 'link' ? { type: 'link', path: e.path, reference: e.reference } : e);
    if (why) held.set(e.path, why);
    const k = foldKey(e.path);
    const had = byKey.get(k);
    if (had === undefined) byKey.set(k, e.path);
    else if (typeof had === 'string') byKey.set(k, [had, e.path]);
    else had.push(e.path);
  }
  // Never beneath a symbolic link (git's rule): `input/g -> sub` and `input/g/x` in one snapshot
  // would have the client write x through the link, somewhere the manifest does not say.
  const links = new Set<string>();
  for (const m of [remote, local]) for (const e of m.entries.values()) if (e.type === 'link') links.add(e.path);
  if (links.size) {
    for (const e of remote.entries.values()) {
      const parts = e.path.split('/');
      for (let i = 1; i < parts.length; i++) {
        const up = parts.slice(0, i).join('/');
        if (links.has(up)) {
          if (!held.has(e.path))
            held.set(e.path, `beneath the symbolic link ${JSON.stringify(up)}: nothing is written through a link`);
          break;
        }
      }
    }
  }
  for (const group of byKey.values()) {
    if (typeof group === 'string') continue;
    for (const p of group) {
      if (!held.has(p))
        held.set(
          p,
          `differs only by case or Unicode normalization from ${group
            .filter((q) => q !== p)
            .map((q) => JSON.stringify(q))
            .join(', ')} in the repository (one file on macOS and Windows)`,
        );
    }
  }
  const localTwins: { path: string; reason: string }[] = [];
  for (const e of local.entries.values()) {
    if (remote.entries.has(e.path)) continue;
    const same = byKey.get(foldKey(e.path));
    const twin = typeof same === 'string' ? (same !== e.path ? same : undefined) : same?.find((q) => q !== e.path);
    if (twin !== undefined)
      localTwins.push({
        path: e.path,
        reason: `differs only by case or Unicode normalization from ${JSON.stringify(twin)} in the repository (one file on macOS and Windows)`,
      });
  }
  const drop = new Set(held.keys());
  return {
    local: without(local, drop),
    cache: without(cache, drop),
    remote: without(remote, drop),
    carried: [...drop].map((p) => remote.entries.get(p)!),
    heldBack: [...held]
      .map(([path, reason]) => ({ path, reason }))
      .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0)),
    localTwins,
  };
}
