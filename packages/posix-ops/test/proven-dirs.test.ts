import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ValidationError, type TransactionId } from '@dsg/contracts';
import { hashOf, put, sandbox, streamOf, sync, txId, type Sandbox } from './helpers.js';

// The shared path steps of writeFile remember the parents they proved real
// directories (ProvenDirs) until an exclusive holder runs. These replace a
// proved directory by a link through the backend's own exclusive operations
// and check that the next upload under it is still refused: if the proofs
// outlived the exclusive holder, the upload would land in `real/b`.
let sb: Sandbox;
let outside: string;
let tx: TransactionId;
let work: string;
beforeEach(async () => {
  sb = await sandbox();
  outside = await mkdtemp(path.join(os.tmpdir(), 'dsg-outside-'));
  await sync(sb.fs, 1, { 'a.txt': 'A' });
  tx = txId();
  work = (await sb.fs.begin(tx)).workPath;
  await put(sb.fs, tx, 'real/b/x', 'X');
});
afterEach(async () => {
  await sb.cleanup();
  await rm(outside, { recursive: true, force: true });
});

async function refusedThroughLink(): Promise<void> {
  const { fs } = sb;
  await expect(fs.writeFile(tx, 'a/b/g', streamOf('G'), { hash: hashOf('G') })).rejects.toThrow(/"a" is a symlink/);
  await expect(fs.copyFile(tx, 'real/b/x', 'a/b/h', { hash: hashOf('X') })).rejects.toBeInstanceOf(ValidationError);
  await expect(fs.copyFile(tx, 'a/b/x', 'y', { hash: hashOf('X') })).rejects.toBeInstanceOf(ValidationError);
  expect(await readdir(path.join(work, 'real/b'))).toEqual(['x']);
}

describe('proved parents are forgotten when an exclusive operation runs', () => {
  it('deleteFile empties a proved directory away, writeLink puts a link at its name: uploads under it are refused', async () => {
    await put(sb.fs, tx, 'a/b/f', 'F'); // proves a and a/b
    await put(sb.fs, tx, 'a/b/f2', 'F2');
    await sb.fs.deleteFile(tx, 'a/b/f');
    await sb.fs.deleteFile(tx, 'a/b/f2'); // drops the emptied a/b and a
    await sb.fs.writeLink(tx, 'a', 'real');
    await refusedThroughLink();
  });

  it('a failed upload removes the parents it made, writeLink puts a link there: uploads under it are refused', async () => {
    await expect(
      sb.fs.writeFile(tx, 'a/b/f', streamOf('F'), { hash: hashOf('not F') }), // makes and proves a, a/b
    ).rejects.toMatchObject({ code: 'HASH_MISMATCH' });
    expect((await readdir(work)).sort()).toEqual(['a.txt', 'real']);
    await sb.fs.writeLink(tx, 'a', 'real');
    await refusedThroughLink();
  });

  it('many uploads into the same directories at once all land', async () => {
    const files = Array.from({ length: 60 }, (_, i) => [`d${i % 4}/s${i % 3}/f${i}`, `body ${i}`] as const);
    await Promise.all(files.map(([p, c]) => put(sb.fs, tx, p, c)));
    for (const d of ['d0', 'd1', 'd2', 'd3'])
      for (const s of ['s0', 's1', 's2']) {
        const want = files.filter(([p]) => p.startsWith(`${d}/${s}/`)).map(([p]) => path.basename(p));
        expect((await readdir(path.join(work, d, s))).sort()).toEqual(want.sort());
      }
  });
});
