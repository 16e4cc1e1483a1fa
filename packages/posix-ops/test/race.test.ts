import { lstat, mkdtemp, readdir, readlink, rm, symlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  NotFoundError,
  TransactionCommitError,
  ValidationError,
  type ByteStream,
  type TransactionId,
} from '@dsg/contracts';
import { hashOf, listing, put, sandbox, streamOf, sync, txId, type Sandbox } from './helpers.js';

let sb: Sandbox;
let outside: string;
let tx: TransactionId;
let work: string;
beforeEach(async () => {
  sb = await sandbox();
  outside = await mkdtemp(path.join(os.tmpdir(), 'dsg-outside-'));
  await sync(sb.fs, 1, { 'a.txt': 'A', 'sub/b.txt': 'B' });
  tx = txId();
  work = (await sb.fs.begin(tx)).workPath;
});
afterEach(async () => {
  await sb.cleanup();
  await rm(outside, { recursive: true, force: true });
});

/** A stream that yields `first`, then waits until release() before the rest. */
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

async function tempLeftovers(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const full = path.join(d, e.name);
      if (e.name.startsWith('.dsg-tmp')) out.push(path.relative(dir, full));
      if (e.isDirectory()) await walk(full);
    }
  };
  await walk(dir);
  return out;
}

describe('link targets: the one gate of @dsg/contracts', () => {
  it.each([
    ['l1', '.', 'project root'],
    ['sub/l1', '..', 'project root'],
    ['sub/l2', 'l1/..', '".." after a name'],
    ['l3', 'sub/../a.txt', '".." after a name'],
    ['x', '../x', 'escapes'],
    ['sub/x', '../../tx', 'escapes'],
    ['g', '.git/config', 'hidden name'],
    ['sub/g', '../.dsg/x', 'hidden name'],
    ['abs', '/etc/passwd', 'absolute'],
  ])('%s -> %s is refused (%s) and nothing is written', async (at, target, why) => {
    const before = await listing(sb.root);
    await expect(sb.fs.writeLink(tx, at, target)).rejects.toThrow(why);
    await expect(sb.fs.writeLink(tx, at, target)).rejects.toBeInstanceOf(ValidationError);
    expect(await listing(sb.root)).toEqual(before);
  });

  it.each([
    ['l', './a.txt'],
    ['sub/l1', '.'],
    ['sub/deep/l', '../b.txt'],
    ['sub/deep/l2', '../../a.txt'],
  ])('%s -> %s is written', async (at, target) => {
    await sb.fs.writeLink(tx, at, target);
    expect(await readlink(path.join(work, at))).toBe(target);
  });
});

describe('link targets are checked against the tree on disk too', () => {
  it('a target passing through another link is refused, even one pointing inside; a link to a link is fine', async () => {
    await sb.fs.writeLink(tx, 'sub/l1', '.');
    await symlink('../..', path.join(work, 'sub/old')); // as an older agent may have let in
    const before = await listing(sb.root);
    await expect(sb.fs.writeLink(tx, 'a', 'sub/l1/b.txt')).rejects.toThrow(/on disk.*"sub\/l1" is a symlink/);
    await expect(sb.fs.writeLink(tx, 'x', 'sub/old/etc/passwd')).rejects.toThrow(/on disk.*is a symlink/);
    await expect(sb.fs.writeLink(tx, 'f', 'a.txt/x')).rejects.toThrow(/on disk.*not a directory/);
    expect(await listing(sb.root)).toEqual(before);
    await sb.fs.writeLink(tx, 'y', 'sub/l1');
    await sb.fs.writeLink(tx, 'z', 'not/yet/there');
  });
});

describe('concurrent requests of one caller are serialised', () => {
  it('a link raced in at a parent never has a file written through it (300 rounds)', async () => {
    const rounds = 300;
    for (let i = 0; i < rounds; i++) await put(sb.fs, tx, `r${i}/b/keep`, 'k');
    const results = await Promise.allSettled(
      Array.from({ length: rounds }, (_, i) => [
        // different depths give the link different windows to land between check and mkdir/open
        ...(i % 2 ? [] : [sb.fs.writeLink(tx, `r${i}/a`, 'b')]),
        sb.fs.writeFile(tx, `r${i}/a/f`, streamOf('evil', 2), { hash: hashOf('evil'), size: 4 }),
        sb.fs.writeFile(tx, `r${i}/a/deeper/f`, streamOf('evil', 2), { hash: hashOf('evil'), size: 4 }),
        sb.fs.writeFile(tx, `r${i}/a/x/y/z/f`, streamOf('evil', 2), { hash: hashOf('evil'), size: 4 }),
        ...(i % 2 ? [sb.fs.writeLink(tx, `r${i}/a`, 'b')] : []),
      ]).flat(),
    );
    for (let i = 0; i < rounds; i++) {
      // b was only ever written as r${i}/b/keep: nothing arrived through the link a -> b
      expect(await readdir(path.join(work, `r${i}`, 'b'))).toEqual(['keep']);
      const a = await lstat(path.join(work, `r${i}`, 'a')).catch(() => null);
      if (a?.isSymbolicLink()) expect(await readlink(path.join(work, `r${i}`, 'a'))).toBe('b');
    }
    for (const r of results) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(ValidationError);
    expect(await tempLeftovers(work)).toEqual([]);
  });

  it('deletes racing writes in shared new directories leave no stray directories or temp files', async () => {
    const ops: Promise<unknown>[] = [];
    for (let i = 0; i < 200; i++) {
      ops.push(put(sb.fs, tx, `n${i % 7}/m${i % 3}/f${i}`, `x${i}`));
      ops.push(sb.fs.deleteFile(tx, `n${(i + 3) % 7}/m${i % 3}/f${i - 3}`));
      if (i % 5 === 0)
        ops.push(sb.fs.writeFile(tx, `n${i % 7}/bad${i}`, streamOf('x'), { hash: '00' }).catch(() => undefined));
    }
    await Promise.allSettled(ops);
    expect(await tempLeftovers(work)).toEqual([]);
  });

  it('uploads share the lock: failed ones cleaning up never make a good one fail in a shared new directory', async () => {
    const good: Promise<unknown>[] = [];
    const bad: Promise<unknown>[] = [];
    for (let i = 0; i < 200; i++) {
      good.push(put(sb.fs, tx, `s${i % 5}/t${i % 4}/f${i}`, `x${i}`));
      if (i % 3 === 0)
        bad.push(
          sb.fs.writeFile(tx, `s${(i + 1) % 5}/t${(i + 2) % 4}/u${i % 2}/bad${i}`, streamOf('x'), { hash: '00' }),
        );
    }
    // handlers on the failing uploads first: they may reject while the good ones are awaited
    const badSettled = Promise.allSettled(bad);
    await Promise.all(good);
    for (const r of await badSettled) expect(r.status === 'rejected' && r.reason instanceof ValidationError).toBe(true);
    expect(await tempLeftovers(work)).toEqual([]);
    for (let i = 0; i < 200; i++)
      expect((await lstat(path.join(work, `s${i % 5}/t${i % 4}/f${i}`))).isFile()).toBe(true);
  });

  it('a planted link out of the tree (an old repository) is never written through, even racing', async () => {
    await symlink(outside, path.join(work, 'old'));
    const results = await Promise.allSettled(
      Array.from({ length: 100 }, (_, i) =>
        sb.fs.writeFile(tx, `old/f${i}`, streamOf('evil'), { hash: hashOf('evil') }),
      ),
    );
    expect(results.every((r) => r.status === 'rejected' && r.reason instanceof ValidationError)).toBe(true);
    expect(await readdir(outside)).toEqual([]);
  });

  it('an upload whose data stalls does not hold up other requests (no section waits for the network)', async () => {
    const g = gatedStream('hel', 'lo');
    const up = sb.fs.writeFile(tx, 'slow/f', g.stream, { hash: hashOf('hello'), size: 5 });
    await g.started;
    await sb.fs.writeLink(tx, 'l', 'a.txt');
    await sb.fs.deleteFile(tx, 'sub/b.txt');
    await put(sb.fs, tx, 'fast', 'quick');
    g.release();
    await expect(up).resolves.toEqual({ size: 5 });
  });

  it('commit is refused while an upload of the transaction is still streaming', async () => {
    const g = gatedStream('hel', 'lo');
    const up = sb.fs.writeFile(tx, 'slow/f', g.stream, { hash: hashOf('hello'), size: 5 });
    await g.started;
    const info = { snapshotId: 's2', message: '', manifestHash: '', user: 'u', createdAt: '2026-01-02T00:00:00Z' };
    await expect(sb.fs.commit(tx, info)).rejects.toBeInstanceOf(TransactionCommitError);
    g.release();
    await up;
    await sb.fs.commit(tx, info);
    expect(await sb.fs.listSnapshots()).toHaveLength(2);
    expect(await tempLeftovers(sb.root)).toEqual([]);
  });

  it('a rollback during an upload: the upload fails and leaves nothing', async () => {
    const g = gatedStream('hel', 'lo');
    const up = sb.fs.writeFile(tx, 'slow/f', g.stream, { hash: hashOf('hello'), size: 5 });
    await g.started;
    await sb.fs.rollback(tx);
    g.release();
    await expect(up).rejects.toBeInstanceOf(NotFoundError);
    expect(await readdir(sb.root)).not.toContain('tx');
  });
});
