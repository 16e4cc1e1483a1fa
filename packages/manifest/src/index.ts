export * from './model.js';
export {
  parseManifest,
  serializeManifest,
  serializeManifestBytes,
  serializeManifestChunks,
  readManifestFile,
  readManifestBytes,
  writeManifestFile,
  writeFileAtomic,
  compactEntry,
} from './format.js';
export { entryProblem, unusableReason } from './unusable.js';
export { ByteSums, createXxh3Hasher, hashBytes, hashFile, HASH_CHUNK, type Sums } from './hash.js';
export { entriesHash, snapshotHash, buildSnapshot, validateChain } from './chain.js';
export { formatTimestamp, parseTimestamp, isTimestamp, recordedMtimeMs, DEFAULT_TIME_ZONE } from './timestamp.js';
export { validateName, validateComponent, validateLinkTarget, nfcRepair } from './names.js';
export { comparePaths } from './order.js';
export * from './classify.js';
export { formatConflictFile, parseConflictFile, conflictBackupName, isConflictBackup } from './conflicts.js';
export { archiveSizeBound, compressArchive, decompressArchive, MAX_ARCHIVE_BYTES } from './archive.js';
export * from './sync-messages.js';
export * from './scan.js';
export { StatCache, readStatColumns, type StatColumns } from './stat-cache.js';
export { treeIsLastSync, type FastStatusOptions } from './fast-status.js';
export {
  unchangedByRecord,
  walkInputs,
  writeWalkRecord,
  WALK_RECORD_RACY_MS,
  type UnchangedTree,
  type WalkInputs,
  type WalkRecordSource,
} from './walk-record.js';
export { describeOutsideData, JUNK_DIRS, OutsideDataCounter, type OutsideData } from './outside-data.js';
export {
  readManifestMirrored,
  readMirrorColumns,
  encodeMirror,
  mirrorOf,
  mirrorDigest,
  decodeMirror,
  decodeMirrorColumns,
  type MirrorColumns,
} from './manifest-mirror.js';
export { dataDirProblem, projectScope, foldKey, type Scope } from './scope.js';
