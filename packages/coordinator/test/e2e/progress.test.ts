import { copyFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ProgressEvent } from '@dsg/contracts';
import { PROGRESS_STEP_BYTES } from '../../src/transfers.js';
import { World, put, type Client } from './world.js';

describe('progress of a transfer', () => {
  let w: World;
  beforeEach(async () => {
    w = await World.create('posix');
  });
  afterEach(async () => {
    await w.dispose();
  });

  it('moves within a large file, in both directions: byte events before the file is done, ending at the total', async () => {
    const size = 6 * PROGRESS_STEP_BYTES + 123;
    const a: Client = await w.client('alice', { 'input/small.txt': 's' });
    await put(a, 'input/big.bin', 'x'.repeat(size));
    const up: ProgressEvent[] = [];
    await w.sync(a, 'first', { onProgress: (e) => up.push(e) });
    const uploads = up.filter((e) => e.phase === 'upload');
    const within = uploads.filter((e) => e.bytes > 0 && e.bytes < size && e.path === undefined);
    expect(within.length).toBeGreaterThanOrEqual(5);
    expect(uploads.at(-1)).toMatchObject({ files: 2, totalFiles: 2, bytes: size + 1, totalBytes: size + 1 });
    for (let i = 1; i < uploads.length; i++) expect(uploads[i]!.bytes).toBeGreaterThanOrEqual(uploads[i - 1]!.bytes);

    const b = await w.client('bob');
    await w.clone(b);
    await put(a, 'input/big.bin', 'y'.repeat(size));
    await w.sync(a, 'second');
    const down: ProgressEvent[] = [];
    await w.sync(b, 'pull', { onProgress: (e) => down.push(e) });
    const downloads = down.filter((e) => e.phase === 'download');
    expect(
      downloads.filter((e) => e.bytes > 0 && e.bytes < size && e.path === undefined).length,
    ).toBeGreaterThanOrEqual(5);
    expect(downloads.at(-1)).toMatchObject({ files: 1, bytes: size, totalBytes: size });
  });

  it('content placed without the wire counts as reused bytes, so a rate can leave it out', async () => {
    const size = 3 * PROGRESS_STEP_BYTES + 7;
    const a: Client = await w.client('alice', { 'input/small.txt': 's' });
    await put(a, 'input/big.bin', 'z'.repeat(size));
    await w.sync(a, 'first');
    const b = await w.client('bob');
    await w.clone(b);

    // a copy: the repository copies it on the server, the teammate from its own file
    await copyFile(path.join(a.root, 'input/big.bin'), path.join(a.root, 'input/copy.bin'));
    const up: ProgressEvent[] = [];
    await w.sync(a, 'copied', { onProgress: (e) => up.push(e) });
    expect(up.filter((e) => e.phase === 'upload').at(-1)).toMatchObject({
      files: 1,
      bytes: size,
      reusedBytes: size,
      totalBytes: size,
    });
    const down: ProgressEvent[] = [];
    await w.sync(b, 'pull', { onProgress: (e) => down.push(e) });
    const downloads = down.filter((e) => e.phase === 'download');
    expect(downloads.at(-1)).toMatchObject({ files: 1, bytes: size, reusedBytes: size, totalBytes: size });
    for (const e of downloads) expect(e.reusedBytes ?? 0).toBeLessThanOrEqual(e.bytes);
  });
});
