import { createRequire } from 'node:module';

// Replaced by its value when scripts/bundle.mjs builds dist/dsg-agent.mjs,
// where no package.json sits beside the file.
declare const AGENT_BUNDLED_VERSION: string | undefined;

function readVersion(): string {
  if (typeof AGENT_BUNDLED_VERSION === 'string') return AGENT_BUNDLED_VERSION;
  const require = createRequire(import.meta.url);
  return (require('../package.json') as { version: string }).version;
}

/** The agent's version, from its package.json. */
export const VERSION: string = readVersion();
