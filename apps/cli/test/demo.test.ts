import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLI_DIR } from './helpers.js';

describe('the README demo', () => {
  it('runs every step through the built binary and exits 0', () => {
    const r = spawnSync('node', [path.join(CLI_DIR, 'dist', 'demo.js')], {
      encoding: 'utf8',
      env: { PATH: process.env['PATH'], HOME: process.env['HOME'] },
      timeout: 300_000,
    });
    expect(r.stdout).toContain('all steps passed');
    expect(r.stdout).toContain('$ cd alice/survey && dsg sync -m "third interview"');
    expect(r.status).toBe(0);
  });
});
