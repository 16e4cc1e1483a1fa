export {
  PosixRemoteFilesystem,
  type PosixRemoteFilesystemOptions,
  type SnapshotMetadata,
} from './posix-remote-filesystem.js';
export { listPosixRepositories } from './list-repositories.js';
export { cloneTree, type CloneStats, type CloneOptions } from './clone-tree.js';
export { Layout, LOCK, CURRENT, SNAPSHOTS, TX, snapshotNumber } from './layout.js';
export {
  FlatRemoteFilesystem,
  type FlatRemoteFilesystemOptions,
  isFlatRepository,
  flatLockFile,
  FLAT_LAST_SYNC,
  FLAT_TX,
} from './flat-remote-filesystem.js';
export {
  openPosixRepository,
  posixLockFile,
  repositoryLayout,
  posixLayoutAt,
  listPosixAndFlatRepositories,
  type OpenPosixOptions,
} from './open-repository.js';
export { posixHost, type PosixHost, type PosixHostOptions } from './host.js';
export type { ParkedOptions } from '@dsg/contracts';
export {
  replicatePosixRepository,
  promotePosixReplica,
  parsePosixReplicaTarget,
  posixReplicaError,
  replicaOf,
  rsyncBytesSent,
  sshArgs,
  assertRsyncArg,
  assertReplicaPath,
  REPLICA_MARKER,
  INCOMING_PREFIX,
  type PosixReplicaTarget,
  type PosixReplicationReport,
  type ReplicatePosixOptions,
  type RsyncSsh,
} from './replicate.js';
export { posixRepositorySummaries } from './summaries.js';
