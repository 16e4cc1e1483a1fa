import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe } from 'vitest';
import { listing } from './helpers.js';
import { e2eSuite } from './e2e-suite.js';

const ROOT = mkdtempSync(path.join(os.tmpdir(), 'dsg-cli-repos-'));

describe('end to end: posix backend over the local (in-process) transport', () => {
  e2eSuite({
    label: 'posix/local',
    initArgs: () => ['--host', 'localhost', '--repo-type', 'posix', '--repo-path', ROOT],
    cloneArgs: (name) => [`localhost:${ROOT}/${name}`],
    repoListing: (name) => listing(path.join(ROOT, name), (rel) => rel === 'lock'),
    lockFile: (name) => path.join(ROOT, name, 'lock'),
  });
});
