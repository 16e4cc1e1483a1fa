export { Transaction, REMOTE_COMMIT_HINT } from './transaction.js';
export { defaultLogger, type TransactionLogger } from './logger.js';
// where the metadata lives: contracts' one layout (re-exported: the engine's public names since 0.1)
export { archivePath, LAST_SYNC, STAT_CACHE, SYNC_MESSAGES } from '@dsg/contracts';
export { DEFAULT_CONCURRENCY, type ProjectSpec } from './sync-run.js';
export {
  compareWithLastSync,
  type LastSyncFacts,
  type LocalComparison,
  type ManifestBytes,
  planOffline,
  planOfflineStatus,
  planStatus,
  planSync,
  type StatusPlan,
  type SyncPlan,
} from './plan.js';
export { resolveOps, type Resolution } from './resolve.js';
export type { SyncResult } from './result.js';
export { runSync, type SyncOptions } from './run-sync.js';
export { runClone } from './clone.js';
export { readHistory, diffManifests, History, type SnapshotRecord, type Change } from './history.js';
export { SyncConflictError, InvalidNamesError, RemoteMovedError } from './errors.js';
export { forEachLimited } from './pool.js';
export { CONFIG_BASE, type SharedConfig } from './shared-config.js';
