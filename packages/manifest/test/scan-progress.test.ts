import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, open, rm, writeFile, type FileHandle } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import type { ProgressEvent } from '@dsg/contracts';
import { scanProject } from '../src/index.js';

const roots: string[] = [];
afterAll(async () => {
  for (const r of roots) await rm(r, { recursive: true, force: true });
});

describe('scanProject progress', () => {
  it('reports hashed bytes while one big file is being hashed, not only when it ends', async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), 'dsg-scan-progress-'));
    roots.push(root);
    await mkdir(path.join(root, 'input'));
    const size = 4 * 1024 * 1024; // four 1 MiB hashing chunks
    await writeFile(path.join(root, 'input', 'big.bin'), randomBytes(size));
    await writeFile(path.join(root, 'input', 'small.txt'), 'small');
    // Each read waits longer than the scan's 100 ms event spacing, so every chunk may be reported
    // (a lower bound on elapsed time: a slower machine only spaces them further).
    const slowOpen = async (f: string): Promise<FileHandle> => {
      const fh = await open(f, 'r');
      const read = fh.read.bind(fh) as (...a: unknown[]) => Promise<unknown>;
      (fh as unknown as { read: (...a: unknown[]) => Promise<unknown> }).read = async (...a) => {
        await sleep(120);
        return read(...a);
      };
      return fh;
    };
    const events: ProgressEvent[] = [];
    const { stats } = await scanProject({
      root,
      dataDirs: ['input'],
      user: 'u',
      openFile: slowOpen,
      onProgress: (e) => events.push(e),
    });
    const during = events.filter((e) => e.phase === 'hash' && e.bytes > 5 && e.bytes < size);
    expect(during.length).toBeGreaterThanOrEqual(2);
    expect(during.every((e) => e.path === 'input/big.bin')).toBe(true);
    const bytes = events.map((e) => e.bytes);
    expect(bytes).toEqual([...bytes].sort((a, b) => a - b)); // never goes back
    expect(events.at(-1)).toMatchObject({ phase: 'scan', files: 2, hashedFiles: 2, bytes: size + 5 });
    expect(stats.bytesHashed).toBe(size + 5);
  });
});
