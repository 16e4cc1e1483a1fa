export { LocalClientFilesystem } from './client-filesystem.js';
export { hasInterruptedTransaction, recoverClient, pruneBackups } from './recovery.js';
export type { Journal, JournalOp } from './journal.js';
export { parseJournal } from './journal.js';
export type { WriteGate } from './client-filesystem.js';
export { listBackups, removeBackups, transactionTime } from './backups.js';
export type { BackupSet, KeptBackup, RemovedBackups } from './backups.js';
