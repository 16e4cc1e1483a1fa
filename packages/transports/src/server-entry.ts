// `@dsg/transports/server`: the agent side only (no ssh2), for the bundled agent.
export {
  AgentServer,
  CLIENT_SILENCE_MS,
  MAX_IN_FLIGHT,
  memoryStats,
  type AgentServerOptions,
  type ServedFilesystem,
} from './server.js';
export { RepositoryLock, type LockRecord, type LockOptions } from './lock.js';
export { detectRepositoryAt, type DetectedRepository, type RepositoryProbes } from './detect.js';
export { MAX_BATCH_FILES, PROTOCOL_VERSION, assertRepoName } from './protocol.js';
export {
  OPS,
  OP_TABLE,
  opSpec,
  type Op,
  type OpDef,
  type OpSpec,
  type StreamDirection,
  type ArgsOf,
  type ResultOf,
  type UploadOp,
  type HelloArgs,
  type HelloReply,
  type AgentStats,
  type SessionTransfer,
  type OpenReply,
} from './ops.js';
export {
  AGENT_REPOSITORY_TYPES,
  AGENT_TARGET_FLAGS,
  agentTargetArgv,
  agentTargetOf,
  type AgentRepositoryType,
  type AgentTarget,
  type AgentTargetOptions,
} from './agent-target.js';
export {
  FrameKind,
  ProtocolError,
  DEFAULT_MAX_PAYLOAD,
  DATA_CHUNK,
  HEADER_BYTES,
  readFrames,
  FrameWriter,
  encodeHeader,
  type Frame,
} from './frames.js';
// quoting for a command line a remote shell runs (the agent's zfs over ssh to a replica host)
export { quoteShellArg, shellCommand } from './shell-quote.js';
