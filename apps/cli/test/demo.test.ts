import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BIN, CLI_DIR } from './helpers.js';

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

describe('dsg demo', () => {
  const env = { PATH: process.env['PATH'], HOME: process.env['HOME'], NO_COLOR: '1' };

  it('runs the same demo from the installed binary and exits 0', () => {
    const r = spawnSync('node', [BIN, 'demo'], { encoding: 'utf8', env, timeout: 300_000 });
    expect(r.stdout).toContain('all steps passed');
    expect(r.status).toBe(0);
  });

  it('says how to repair an install whose demo script is missing', () => {
    // the bin directory alone, without the dist/ it ships in
    const lone = mkdtempSync(path.join(os.tmpdir(), 'dsg-lone-bin-'));
    cpSync(path.dirname(BIN), lone, { recursive: true });
    const r = spawnSync('node', [path.join(lone, path.basename(BIN)), 'demo'], { encoding: 'utf8', env });
    expect(r.stderr).toContain('the demo script is not installed beside this dsg');
    expect(r.stderr).toContain('npm i -g @dsg/cli');
    expect(r.status).not.toBe(0);
  });
});
