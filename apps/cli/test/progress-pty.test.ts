import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { shellCommand } from '@dsg/transports';
import { BIN, dsg, ok, sandbox, write } from './helpers.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const BAR = /[\u2588\u2591]{5,}/;
const UNIT: Record<string, number> = { B: 1, KiB: 1024, MiB, GiB, TiB: 1024 * GiB };

const cleanup: string[] = [];
afterAll(() => {
  for (const d of cleanup) rmSync(d, { recursive: true, force: true });
});

/**
 * Run the built `dsg` in a real pseudo-terminal: script(1) allocates one and
 * its stdout is what the terminal showed. script takes one shell command
 * line; it is built here from a fixed argument vector, each argument quoted
 * by shellCommand (single quotes, control characters refused), so no path
 * or argument can change what runs.
 */
function inTerminal(cwd: string, env: NodeJS.ProcessEnv, ...args: string[]): { status: number | null; out: string } {
  const r = spawnSync('script', ['-qfec', shellCommand(['node', BIN, ...args]), '/dev/null'], {
    cwd,
    env: { ...env, TERM: 'xterm' },
    encoding: 'utf8',
    maxBuffer: 64 * MiB,
    timeout: 540_000, // a hang guard only
  });
  return { status: r.status, out: r.stdout };
}

/** The lines as the terminal shows them after each redraw: every \r-separated frame, escapes removed. */
function frames(out: string): string[] {
  // eslint-disable-next-line no-control-regex
  const plain = out.replace(/\x1b\[[0-9;?]*[A-Za-z]|\x1b[78]/g, '');
  return plain.split(/\r\n|\r|\n/).filter((l) => l.trim() !== '');
}

/** Every rate printed, in bytes/s. */
function rates(out: string): number[] {
  return [...out.matchAll(/(\d+(?:\.\d+)?) (B|KiB|MiB|GiB|TiB)\/s/g)].map((m) => Number(m[1]) * UNIT[m[2]!]!);
}

/** A 1 GiB file of real (non-sparse) bytes, cheaply: one random 1 MiB block written 1024 times. */
function writeGiB(file: string): void {
  mkdirSync(path.dirname(file), { recursive: true });
  const block = randomBytes(MiB);
  const fd = openSync(file, 'w');
  try {
    for (let i = 0; i < 1024; i++) writeSync(fd, block);
  } finally {
    closeSync(fd);
  }
}

describe('progress in a real terminal', () => {
  it('a 1 GiB sync to a posix repository moves the bar by bytes, with sane rates, to 100%', () => {
    const sb = sandbox();
    const root = mkdtempSync(path.join(os.tmpdir(), 'dsg-cli-progress-pty-'));
    cleanup.push(sb.dir, root);
    const dir = path.join(sb.dir, 'p');
    write(path.join(dir, 'input', 'small.txt'), 'small');
    ok(dsg(dir, sb.env, 'init', '--repo-type', 'posix', '--repo-path', root, '--repo-name', 'p'));
    writeGiB(path.join(dir, 'input', 'big.bin'));

    const r = inTerminal(dir, sb.env, 'sync', '-m', 'one big file');
    expect(r.status, r.out.slice(-2000)).toBe(0);
    const lines = frames(r.out);

    // the upload bar went by bytes: many distinct percentages, not 0 → 100
    const upload = lines.filter((l) => l.startsWith('upload '));
    const percents = new Set(upload.map((l) => Number(/\| +(\d+)% /.exec(l)?.[1])));
    expect(percents.size, upload.join('\n')).toBeGreaterThanOrEqual(10);
    expect(percents.has(100)).toBe(true);
    expect(upload.at(-1)).toMatch(/ 100% {2}1\.0 GiB\/1\.0 GiB /);
    expect(upload.filter((l) => BAR.test(l)).length).toBe(upload.length); // 80 columns leave room for the bar

    // every rate printed is a real one: above 0, below 100 GiB/s (the report was "1.5 TiB/s")
    const seen = rates(r.out);
    expect(seen.length).toBeGreaterThan(0);
    for (const rate of seen) {
      expect(rate).toBeGreaterThan(0);
      expect(rate).toBeLessThan(100 * GiB);
    }

    // the scan showed the big file hashed, and its last line counts every hashed byte
    const scan = lines.filter((l) => l.startsWith('scan '));
    expect(scan.at(-1)).toMatch(/hashed [12] files, 1\.0 GiB/);
    expect(lines.some((l) => l.startsWith('commit '))).toBe(true);
    expect(r.out).toMatch(/s2/);
    rmSync(path.join(dir, 'input', 'big.bin'));
  });

  it('draws nothing under --quiet or --json in a terminal, nor on a pipe', () => {
    const sb = sandbox();
    const root = mkdtempSync(path.join(os.tmpdir(), 'dsg-cli-progress-pty-'));
    cleanup.push(sb.dir, root);
    const dir = path.join(sb.dir, 'p');
    write(path.join(dir, 'input', 'a.bin'), 'x'.repeat(3 * MiB));
    ok(dsg(dir, sb.env, 'init', '--repo-type', 'posix', '--repo-path', root, '--repo-name', 'p'));

    write(path.join(dir, 'input', 'b.bin'), 'y'.repeat(3 * MiB));
    const quiet = inTerminal(dir, sb.env, '--quiet', 'sync', '-m', 'quiet');
    expect(quiet.status).toBe(0);
    expect(quiet.out).not.toMatch(BAR);
    expect(quiet.out).not.toMatch(/upload|scan/);

    write(path.join(dir, 'input', 'c.bin'), 'z'.repeat(3 * MiB));
    const json = inTerminal(dir, sb.env, '--json', 'sync', '-m', 'json');
    expect(json.status).toBe(0);
    expect(json.out).not.toMatch(BAR);
    expect(JSON.parse(json.out.replace(/\r\n/g, '\n'))).toMatchObject({ command: 'sync', snapshotId: 's3' });

    write(path.join(dir, 'input', 'd.bin'), 'w'.repeat(3 * MiB));
    const piped = ok(dsg(dir, sb.env, 'sync', '-m', 'piped'));
    expect(piped.stdout + piped.stderr).not.toMatch(BAR);
    expect(piped.stderr).not.toMatch(/upload|\r/);

    // TERM=dumb cannot redraw a line: nothing drawn there either
    write(path.join(dir, 'input', 'e.bin'), 'v'.repeat(3 * MiB));
    const dumb = spawnSync('script', ['-qfec', shellCommand(['node', BIN, 'sync', '-m', 'dumb']), '/dev/null'], {
      cwd: dir,
      env: { ...sb.env, TERM: 'dumb' },
      encoding: 'utf8',
      timeout: 540_000,
    });
    expect(dumb.status).toBe(0);
    expect(dumb.stdout).not.toMatch(BAR);
  });
});
