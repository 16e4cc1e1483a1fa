export * from './server-entry.js';
export { AgentClient, openRemote, type AgentChannel, type ChannelTransport, type HelloReply } from './client.js';
export { LocalTransport, type LocalTransportOptions } from './local-transport.js';
export { ByteQueue } from './byte-queue.js';
