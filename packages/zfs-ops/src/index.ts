export { createZfsRunner, type ZfsRunner, type ZfsRunResult, type ZfsRunnerOptions } from './runner.js';
export { Zfs, type BusyRetry, type ListRow } from './zfs.js';
export {
  assertDatasetName,
  assertSnapshotName,
  assertPropertyName,
  assertRepositoryName,
  assertSnapshotId,
  isRepositoryName,
} from './names.js';
export { ZfsOperations, PROP, type Logger, type Phase } from './operations.js';
export { ZfsRemoteFilesystem, listZfsRepositories, type ZfsRemoteFilesystemOptions } from './remote-fs.js';
export { zfsHost, zfsLockFileName, type ZfsHost, type ZfsHostOptions } from './host.js';
export { datasetMountedAt } from './dataset-at.js';
export { zfsParkedDirName } from './parked.js';
export type { ParkedOptions } from '@dsg/contracts';
export { REPLICA_PROP, replicaError } from './replica.js';
export { repositorySummaries } from './summaries.js';
export {
  replicateDataset,
  promoteReplica,
  syncoidArgs,
  assertSyncoidArg,
  estimatedBytes,
  type ReplicateDatasetOptions,
  type ReplicationReport,
  type SyncoidSsh,
} from './replicate.js';
