import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The monorepo root (this file is tooling/testenv/{src,dist}/binaries.*). */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

const cliDir = path.join(REPO_ROOT, 'apps', 'cli');

/** The `dsg` binary as it ships: whatever the CLI package's `bin` names (the bundle), so tests run what users run. */
export const CLI_BIN = path.join(
  cliDir,
  (JSON.parse(readFileSync(path.join(cliDir, 'package.json'), 'utf8')) as { bin: { dsg: string } }).bin.dsg,
);

/** The bundled agent, the one file a server installs. */
export const AGENT_BUNDLE = path.join(REPO_ROOT, 'apps', 'agent', 'dist', 'dsg-agent.mjs');

/**
 * The original dsg's (HRDAG/dsg 0.4.4) fixtures: shared/interop beside this
 * checkout (the workspace and CI both lay it there), or DSG_INTEROP_FIXTURES.
 */
export const INTEROP_FIXTURES =
  process.env['DSG_INTEROP_FIXTURES'] ?? path.join(REPO_ROOT, '..', 'shared', 'interop', 'fixtures');
