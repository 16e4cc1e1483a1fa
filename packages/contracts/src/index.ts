export * from './errors.js';
export * from './transaction-id.js';
export * from './interfaces.js';
export * from './safe-path.js';
export * from './fault.js';
export * from './link-target.js';
export * from './snapshot-message.js';
export * from './safe-text.js';
