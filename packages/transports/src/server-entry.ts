// `@dsg/transports/server`: the agent side only (no ssh2), for the bundled agent.
export { AgentServer, CLIENT_SILENCE_MS, MAX_IN_FLIGHT, memoryStats, type AgentServerOptions, type ServedFilesystem } from './server.js';
export { RepositoryLock, type LockRecord, type LockOptions } from './lock.js';
export { PROTOCOL_VERSION, OPS, type Op, assertRepoName } from './protocol.js';
export { FrameKind, ProtocolError, DEFAULT_MAX_PAYLOAD, DATA_CHUNK, HEADER_BYTES, readFrames, FrameWriter, encodeHeader, type Frame } from './frames.js';
