import { LAST_SYNC, ValidationError } from '@dsg/contracts';
import { entriesEqual, type ManifestEntry, type PathPlan } from '@dsg/manifest';
import { SyncConflictError } from './errors.js';
import type { SyncPlan } from './plan.js';
import { assertConfigResolution, keepConfigOutOfManifest } from './shared-config.js';

export type Resolution = 'L' | 'C' | 'R';

export type Source = { from: 'local' } | { from: 'remote' } | { from: 'snapshot'; snapshotId: string };
export interface Transfer {
  path: string;
  entry: ManifestEntry;
  source: Source;
}
export interface Ops {
  uploads: Transfer[];
  downloads: Transfer[];
  deleteLocal: string[];
  deleteRemote: string[];
  /** local losers of a conflict resolution, copied to `<name>~<ts>~` */
  backups: ManifestEntry[];
  /** the entries of the next manifest */
  merged: Map<string, ManifestEntry>;
  cacheChange: boolean;
}

/**
 * What the plan (plus resolutions) means in transfers. Unresolved conflicts →
 * SyncConflictError. `backup` false: a losing local version is replaced
 * without a `<name>~<ts>~` copy (user config backup_on_conflict: false).
 */
export function resolveOps(
  plan: SyncPlan,
  user: string,
  resolutions?: ReadonlyMap<string, Resolution>,
  backup = true,
): Ops {
  assertConfigResolution(plan, resolutions);
  const ops: Ops = {
    uploads: [],
    downloads: [],
    deleteLocal: [],
    deleteRemote: [],
    backups: [],
    merged: new Map(),
    cacheChange: false,
  };
  const unresolved: PathPlan[] = [];
  const resolved: { plan: PathPlan; resolution: Resolution }[] = [];
  const cacheId = plan.cache.metadata?.snapshot_id ?? null;
  const keep = (e: ManifestEntry): void => void ops.merged.set(e.path, e);
  const upload = (e: ManifestEntry, source: Source = { from: 'local' }): void => {
    // the scan already wrote this user on new and changed files: a copy of each would double an init's entries
    const mine = source.from === 'local' && e.user !== user ? { ...e, user } : e;
    ops.uploads.push({ path: e.path, entry: mine, source });
    keep(mine);
  };
  const download = (e: ManifestEntry, source: Source = { from: 'remote' }): void => {
    ops.downloads.push({ path: e.path, entry: e, source });
    keep(e);
  };
  for (const p of plan.paths) {
    switch (p.action) {
      case 'none':
        keep((p.remote ?? p.local)!);
        break;
      case 'download':
        download(p.remote!);
        break;
      case 'upload':
        upload(p.local!);
        break;
      case 'delete_local':
        ops.deleteLocal.push(p.path);
        break;
      case 'delete_remote':
        ops.deleteRemote.push(p.path);
        break;
      case 'cache_only':
        ops.cacheChange = true;
        if (p.remote) keep(p.remote);
        break;
      case 'conflict': {
        const res = resolutions?.get(p.path);
        if (!res) {
          unresolved.push(p);
          break;
        }
        resolved.push({ plan: p, resolution: res });
        if (res === 'L') {
          if (p.local) upload(p.local);
          else if (p.remote) ops.deleteRemote.push(p.path);
        } else if (res === 'R') {
          if (p.local && backup) ops.backups.push(p.local);
          if (p.remote) download(p.remote);
          else if (p.local) ops.deleteLocal.push(p.path);
        } else {
          const c = p.cache;
          if (backup && p.local && (!c || !entriesEqual(p.local, c))) ops.backups.push(p.local);
          if (c) {
            if (cacheId === null)
              throw new ValidationError(`cannot restore ${p.path}: ${LAST_SYNC} has no snapshot id`, { path: p.path });
            const src: Source = { from: 'snapshot', snapshotId: cacheId };
            if (!p.local || !entriesEqual(p.local, c)) ops.downloads.push({ path: c.path, entry: c, source: src });
            if (!p.remote || !entriesEqual(p.remote, c)) ops.uploads.push({ path: c.path, entry: c, source: src });
            keep(c);
          } else {
            if (p.local) ops.deleteLocal.push(p.path);
            if (p.remote) ops.deleteRemote.push(p.path);
          }
        }
        break;
      }
    }
  }
  if (unresolved.length) throw new SyncConflictError(unresolved, resolved);
  for (const e of plan.carried) keep(e); // held back: the repository keeps them as they are
  keepConfigOutOfManifest(ops);
  return ops;
}

/** Anything to move or delete on either side (a cache-only change is not). */
export const hasTransfers = (o: Ops): boolean =>
  o.uploads.length + o.downloads.length + o.deleteLocal.length + o.deleteRemote.length + o.backups.length > 0;
