export * from './env.js';
export * from './zfs-helpers.js';
export * from './binaries.js';
