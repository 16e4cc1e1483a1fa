export * from './server-entry.js';
export {
  AgentClient,
  openRemote,
  type AgentChannel,
  type AgentClientOptions,
  type ChannelTransport,
} from './client.js';
export { LocalTransport, type LocalTransportOptions } from './local-transport.js';
export { ByteQueue } from './byte-queue.js';
export { SshTransport, type SshTransportOptions } from './ssh-transport.js';
export { resolveSshTarget, type ResolvedSshTarget, type SshTargetOptions } from './ssh-config-resolve.js';
export { verifyHostKey, fingerprint, knownHostName, parseKnownHosts, hostsFieldMatches } from './known-hosts.js';
export { quoteShellArg, shellCommand } from './shell-quote.js';
