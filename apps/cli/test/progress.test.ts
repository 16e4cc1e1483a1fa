import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BIN, dsg, sandbox, write } from './helpers.js';

const BAR = /[\u2588\u2591]{5,}/; // the bar's full and empty cells

function project(): { sb: ReturnType<typeof sandbox>; dir: string; root: string } {
  const sb = sandbox();
  const dir = path.join(sb.dir, 'p');
  for (let i = 0; i < 40; i++) write(path.join(dir, 'input', `f${i}.bin`), 'x'.repeat(64 * 1024 + i));
  const root = mkdtempSync(path.join(os.tmpdir(), 'dsg-cli-progress-'));
  return { sb, dir, root };
}

describe('progress bars', () => {
  it('are drawn under a pseudo-terminal (script -qfc)', () => {
    const { sb, dir, root } = project();
    // script(1) gives the command a real pty; its stdout is what the terminal showed.
    const cmd = ['node', BIN, 'init', '--repo-type', 'posix', '--repo-path', root, '--repo-name', 'p']
      .map((a) => `'${a}'`)
      .join(' ');
    const r = spawnSync('script', ['-qfec', cmd, '/dev/null'], {
      cwd: dir,
      env: { ...sb.env, TERM: 'xterm' },
      encoding: 'utf8',
      timeout: 300_000,
    });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(BAR);
    // 2.5 MiB may go by faster than a rate can be measured: then it reads `-- B/s`
    expect(r.stdout).toMatch(/upload .*\d+% .* (\d+(\.\d)? (B|KiB|MiB)|--( B)?)\/s {2}ETA/);
    expect(r.stdout).toContain('initialized');
  });

  it('init prompts for missing values on a terminal (and only there)', () => {
    const { sb, dir, root } = project();
    const cmd = `'node' '${BIN}' init`;
    const r = spawnSync('script', ['-qfec', cmd, '/dev/null'], {
      cwd: dir,
      env: { ...sb.env, TERM: 'xterm' },
      input: `posix\nlocalhost\n${root}\nasked\n`,
      encoding: 'utf8',
      timeout: 300_000,
    });
    expect(r.stdout).toContain("repository type (zfs, posix, or xfs: the original dsg's flat layout) [posix]:");
    expect(r.stdout).toMatch(/initialized localhost:.*asked/);
    const piped = dsg(path.join(sb.dir), sb.env, 'init');
    expect(piped.code).toBe(2);
    expect(piped.stderr).toMatch(/no --repo-path given/);
  });

  it('are not drawn when piped, nor under --json', () => {
    const { sb, dir, root } = project();
    const r = dsg(dir, sb.env, 'init', '--repo-type', 'posix', '--repo-path', root, '--repo-name', 'p');
    expect(r.code).toBe(0);
    expect(r.stderr + r.stdout).not.toMatch(BAR);
    const cmd = ['node', BIN, '--json', 'status'].map((a) => `'${a}'`).join(' ');
    const t = spawnSync('script', ['-qfec', cmd, '/dev/null'], {
      cwd: dir,
      env: { ...sb.env, TERM: 'xterm' },
      encoding: 'utf8',
      timeout: 300_000,
    });
    expect(t.status).toBe(0);
    expect(t.stdout).not.toMatch(BAR);
    expect(JSON.parse(t.stdout.replace(/\r\n/g, '\n'))).toMatchObject({ command: 'status', clean: true });
  });
});
