export { Transaction, REMOTE_COMMIT_HINT } from './transaction.js';
export { defaultLogger, type TransactionLogger } from './logger.js';
export {
  planSync,
  runSync,
  runClone,
  resolveOps,
  archivePath,
  LAST_SYNC,
  SYNC_MESSAGES,
  STAT_CACHE,
  DEFAULT_CONCURRENCY,
  type ProjectSpec,
  type SyncPlan,
  type SyncResult,
  type SyncOptions,
  type Resolution,
} from './sync.js';
export { SyncConflictError, InvalidNamesError, RemoteMovedError } from './errors.js';
export { forEachLimited } from './pool.js';
export { CONFIG_BASE, type SharedConfig } from './shared-config.js';
