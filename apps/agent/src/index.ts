export { VERSION } from './version.js';
export { createAgentHasher } from './hasher.js';
export { createAgentServer, type AgentConfig } from './serve.js';
