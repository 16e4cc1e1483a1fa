import type { SyncPlan } from './plan.js';

export interface SyncResult {
  /**
   * nothing: no change. cache-only: last-sync.json rewritten locally.
   * local-only: the repository needs no change (downloads / local deletes
   * only): applied on the client alone, no new snapshot. snapshot: one
   * transaction made a new snapshot. clone. dry-run: plan only.
   */
  kind: 'nothing' | 'cache-only' | 'local-only' | 'snapshot' | 'clone' | 'dry-run';
  /** the new snapshot (snapshot), or the one the client now matches (cache-only, clone) */
  snapshotId: string | null;
  transactionId: string | null;
  plan: SyncPlan;
  uploaded: string[];
  downloaded: string[];
  deletedLocal: string[];
  deletedRemote: string[];
  /** `<name>~<YYYYMMDDTHHMMSS>~` copies of local files that lost a conflict resolution */
  conflictBackups: string[];
  /**
   * File content moved: `uploaded` / `downloaded` crossed the wire; `reused`
   * did not — copied on the server or from a local file that already held it.
   */
  bytes: { uploaded: number; downloaded: number; reused: number };
}

/** A result with nothing moved yet; the apply fills it in as it goes. */
export function emptyResult(
  kind: SyncResult['kind'],
  plan: SyncPlan,
  tx: string | null,
  snapshotId: string | null,
): SyncResult {
  return {
    kind,
    snapshotId,
    transactionId: tx,
    plan,
    uploaded: [],
    downloaded: [],
    deletedLocal: [],
    deletedRemote: [],
    conflictBackups: [],
    bytes: { uploaded: 0, downloaded: 0, reused: 0 },
  };
}
