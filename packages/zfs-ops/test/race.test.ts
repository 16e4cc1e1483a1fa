import { lstatSync, mkdtempSync, readdirSync, readlinkSync, rmSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { TransactionCommitError, ValidationError, type ByteStream } from '@dsg/contracts';
import { freshParent, requireZfs, type TestParent } from '@dsg/testenv';
import { ZfsRemoteFilesystem } from '../src/index.js';
import { bytes, hashOf, info, readAll, testHasher, tx } from './helpers.js';

const env = requireZfs();

/** A stream that yields `first`, then waits for release() before the rest. */
function gatedStream(first: string, rest: string): { stream: ByteStream; release: () => void; started: Promise<void> } {
  let release!: () => void;
  let started!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const startedP = new Promise<void>((r) => (started = r));
  async function* gen(): ByteStream {
    started();
    yield Buffer.from(first);
    await gate;
    yield Buffer.from(rest);
  }
  return { stream: gen(), release, started: startedP };
}

function temps(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true }))
    if (e.name.includes('.dsg-tmp-')) out.push(e.name);
  return out;
}

describe.skipIf(!env)('ZFS work area: concurrent requests are serialised, links never followed', () => {
  const parents: TestParent[] = [];
  const dirs: string[] = [];
  afterEach(() => {
    while (parents.length) parents.pop()!.destroy();
    while (dirs.length) rmSync(dirs.pop()!, { recursive: true, force: true });
  });
  const fsOf = (): ZfsRemoteFilesystem => {
    const p = freshParent(env!, 'zrace');
    parents.push(p);
    return new ZfsRemoteFilesystem({ parent: p.dataset, repo: 'repo', mountpoint: p.mountpoint, hasher: testHasher });
  };

  it('link targets go through the contracts gate', async () => {
    const fs = fsOf();
    const t = tx();
    const { workPath } = await fs.begin(t);
    for (const [at, target] of [
      ['l1', '.'],
      ['sub/l2', 'l1/..'],
      ['x', '../x'],
      ['g', '.git/config'],
      ['sub/g', '../.ssh/authorized_keys'],
    ] as const) {
      await expect(fs.writeLink(t, at, target), `${at} -> ${target}`).rejects.toBeInstanceOf(ValidationError);
    }
    await fs.writeLink(t, 'sub/l1', '.');
    await fs.writeLink(t, 'ok', './sub');
    expect(readlinkSync(path.join(workPath, 'ok'))).toBe('./sub');
    expect(readdirSync(workPath).sort()).toEqual(['ok', 'sub']);
    // on disk: a target through another link is refused, even one pointing inside
    symlinkSync('../..', path.join(workPath, 'sub', 'old'));
    await expect(fs.writeLink(t, 'a', 'sub/l1/x')).rejects.toThrow(/on disk.*is a symlink/);
    await expect(fs.writeLink(t, 'b', 'sub/old/etc/passwd')).rejects.toThrow(/on disk.*is a symlink/);
    await fs.writeLink(t, 'c', 'sub/l1');
    expect(readdirSync(workPath).sort()).toEqual(['c', 'ok', 'sub']);
    await fs.rollback(t);
  });

  it('a link raced in at a parent never has a file (or directory) created through it (200 rounds)', async () => {
    const fs = fsOf();
    const t = tx();
    const { workPath } = await fs.begin(t);
    const rounds = 200;
    for (let i = 0; i < rounds; i++) await fs.writeFile(t, `r${i}/b/keep`, bytes('k'), { hash: hashOf('k') });
    const results = await Promise.allSettled(
      Array.from({ length: rounds }, (_, i) => [
        // different depths give the link different windows to land between check and mkdir/open
        ...(i % 2 ? [] : [fs.writeLink(t, `r${i}/a`, 'b')]),
        fs.writeFile(t, `r${i}/a/f`, bytes('evil'), { hash: hashOf('evil'), size: 4 }),
        fs.writeFile(t, `r${i}/a/deeper/f`, bytes('evil'), { hash: hashOf('evil'), size: 4 }),
        fs.writeFile(t, `r${i}/a/x/y/z/f`, bytes('evil'), { hash: hashOf('evil'), size: 4 }),
        ...(i % 2 ? [fs.writeLink(t, `r${i}/a`, 'b')] : []),
      ]).flat(),
    );
    for (let i = 0; i < rounds; i++) {
      expect(readdirSync(path.join(workPath, `r${i}`, 'b'))).toEqual(['keep']);
      const a = path.join(workPath, `r${i}`, 'a');
      if (lstatSync(a, { throwIfNoEntry: false })?.isSymbolicLink()) expect(readlinkSync(a)).toBe('b');
    }
    for (const r of results) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(ValidationError);
    expect(temps(workPath)).toEqual([]);
    await fs.rollback(t);
  });

  it('a planted link out of the work area is never written through, not even a directory', async () => {
    const fs = fsOf();
    const outside = mkdtempSync(path.join(os.tmpdir(), 'dsg-zrace-out-'));
    dirs.push(outside);
    const t = tx();
    const { workPath } = await fs.begin(t);
    symlinkSync(outside, path.join(workPath, 'old'));
    const results = await Promise.allSettled(
      Array.from({ length: 50 }, (_, i) => fs.writeFile(t, `old/d${i}/f`, bytes('evil'), { hash: hashOf('evil') })),
    );
    expect(results.every((r) => r.status === 'rejected' && r.reason instanceof ValidationError)).toBe(true);
    expect(readdirSync(outside)).toEqual([]);
    await fs.rollback(t);
  });

  // The shared path steps remember proved parents (ProvenDirs) until an exclusive holder runs:
  // a failed upload's cleanup removes the parents it made, writeLink puts a link at that name,
  // and the next upload under it is refused (with stale proofs it would land in real/b).
  it('a proved parent replaced by a link through exclusive operations is refused again', async () => {
    const fs = fsOf();
    const t = tx();
    const { workPath } = await fs.begin(t);
    await fs.writeFile(t, 'real/b/x', bytes('X'), { hash: hashOf('X') });
    await expect(fs.writeFile(t, 'a/b/f', bytes('F'), { hash: hashOf('not F') })).rejects.toMatchObject({
      code: 'HASH_MISMATCH',
    });
    expect(readdirSync(workPath).sort()).toEqual(['real']);
    await fs.writeLink(t, 'a', 'real');
    await expect(fs.writeFile(t, 'a/b/g', bytes('G'), { hash: hashOf('G') })).rejects.toThrow(/"a" is a symlink/);
    await expect(fs.copyFile(t, 'real/b/x', 'a/b/h', { hash: hashOf('X') })).rejects.toBeInstanceOf(ValidationError);
    await expect(fs.copyFile(t, 'a/b/x', 'y', { hash: hashOf('X') })).rejects.toBeInstanceOf(ValidationError);
    expect(readdirSync(path.join(workPath, 'real/b'))).toEqual(['x']);
    await fs.rollback(t);
  });

  it('a stalled upload holds up nobody; commit is refused until it has finished', async () => {
    const fs = fsOf();
    const t = tx();
    await fs.begin(t);
    const g = gatedStream('hel', 'lo');
    const up = fs.writeFile(t, 'slow/f', g.stream, { hash: hashOf('hello'), size: 5 });
    await g.started;
    await fs.writeLink(t, 'l', 'slow/f');
    await fs.writeFile(t, 'fast', bytes('quick'), { hash: hashOf('quick') });
    await fs.deleteFile(t, 'fast');
    await expect(fs.commit(t, info(1))).rejects.toBeInstanceOf(TransactionCommitError);
    g.release();
    await expect(up).resolves.toEqual({ size: 5 });
    await fs.commit(t, info(1)); // the refusal left the transaction open
    expect(await readAll(await fs.readFile('slow/f'))).toBe('hello');
    expect(temps(fs.ops.livePath)).toEqual([]);
  });
});
