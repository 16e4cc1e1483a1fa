import { createRequire } from 'node:module';

// Replaced by its value when scripts/bundle.mjs builds dist/bin/, where no
// package.json sits beside the file.
declare const DSG_BUNDLED_VERSION: string | undefined;

function readVersion(): string {
  if (typeof DSG_BUNDLED_VERSION === 'string') return DSG_BUNDLED_VERSION;
  const require = createRequire(import.meta.url);
  return (require('../package.json') as { version: string }).version;
}

/** The CLI's version, from its package.json (one source of truth). */
export const VERSION: string = readVersion();
