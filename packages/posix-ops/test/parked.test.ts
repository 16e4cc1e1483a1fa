// Parked content on both posix layouts, on a real disk: what an interrupted
// transaction verified is kept by hash for the next one, survives a new
// agent's recovery, expires, and is never trusted without verification.
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { NotFoundError, PARKED_TTL_MS, ValidationError, type TransactionId } from '@dsg/contracts';
import { FlatRemoteFilesystem, PosixRemoteFilesystem } from '../src/index.js';
import type { ParkedOptions } from '@dsg/contracts';
import { hashOf, streamOf, txId, xxh3Hasher } from './helpers.js';

type Fs = PosixRemoteFilesystem | FlatRemoteFilesystem;

const LAYOUTS: [
  name: string,
  make: (root: string, o?: ParkedOptions) => Fs,
  parkedDir: string,
  /** where a work area keeps the file placed at rel */
  placed: (workPath: string, rel: string) => string,
][] = [
  [
    'snapshot layout',
    (root, o) => new PosixRemoteFilesystem({ root, hasher: xxh3Hasher, ...o }),
    'parked',
    (w, rel) => path.join(w, rel),
  ],
  [
    'flat layout',
    (root, o) => new FlatRemoteFilesystem({ root, hasher: xxh3Hasher, ...o }),
    '.dsg/tx/parked',
    (w, rel) => path.join(w, 'new', rel),
  ],
];

const A = 'the first upload of an interrupted sync';
const B = 'the second one';

describe.each(LAYOUTS)('parked content, %s', (_name, make, parkedRel, placed) => {
  let base: string;
  let root: string;
  let parkedDir: string;
  beforeEach(async () => {
    base = await mkdtemp(path.join(os.tmpdir(), 'dsg-posix-parked-'));
    root = path.join(base, 'repo');
    parkedDir = path.join(root, parkedRel);
  });
  afterEach(() => rm(base, { recursive: true, force: true }));

  const put = (fs: Fs, tx: TransactionId, rel: string, content: string): Promise<{ size: number }> =>
    fs.writeFile(tx, rel, streamOf(content), { hash: hashOf(content), size: Buffer.byteLength(content) });

  /** A transaction that uploads A and B, then is rolled back (an interrupted sync). */
  async function interrupted(fs: Fs): Promise<void> {
    const tx = txId();
    await fs.begin(tx);
    await put(fs, tx, 'in/a.txt', A);
    await put(fs, tx, 'in/b.txt', B);
    expect((await fs.rollback(tx)).leftovers).toEqual([]);
  }

  it("survives a new agent's recover() (the old one killed with -9) and is placed from there", async () => {
    const killed = make(root);
    const tx = txId();
    await killed.begin(tx);
    await put(killed, tx, 'in/a.txt', A);
    await put(killed, tx, 'in/b.txt', B);
    // never rolled back: a new instance is what a restarted agent is
    const fs = make(root);
    const report = await fs.recover();
    expect(report.leftovers).toEqual([]);
    expect(report.transactions).toEqual([{ transactionId: tx, action: 'rolled-back' }]);
    expect(await fs.parkedContent()).toEqual([hashOf(A), hashOf(B)].sort());

    const next = txId();
    const { workPath } = await fs.begin(next);
    expect(await fs.copyParked(next, 'moved/a.txt', { hash: hashOf(A), size: A.length })).toEqual({
      size: A.length,
    });
    expect(await readFile(placed(workPath, 'moved/a.txt'), 'utf8')).toBe(A);
    // placing does not use it up: only a commit does
    expect(await fs.parkedContent()).toEqual([hashOf(A), hashOf(B)].sort());
  });

  it('expires: past the TTL it is no longer offered, and the next begin removes it', async () => {
    await interrupted(make(root));
    expect(await make(root).parkedContent()).toEqual([hashOf(A), hashOf(B)].sort());
    // a clock past the TTL (72 h by default), and a shorter TTL: both see it expired
    const later = make(root, { now: () => Date.now() + PARKED_TTL_MS + 60_000 });
    expect(await make(root, { parkedTtlMs: 1000, now: () => Date.now() + 2000 }).parkedContent()).toEqual([]);
    expect(await later.parkedContent()).toEqual([]);
    const tx = txId();
    await later.begin(tx);
    await expect(later.copyParked(tx, 'in/a.txt', { hash: hashOf(A) })).rejects.toBeInstanceOf(NotFoundError);
    expect(existsSync(parkedDir)).toBe(false);
  });

  it('a damaged parked file is refused and removed; a size the caller got wrong is refused and keeps it', async () => {
    const fs = make(root);
    await interrupted(fs);
    await writeFile(path.join(parkedDir, hashOf(A)), 'not what its name says');
    const tx = txId();
    const { workPath } = await fs.begin(tx);
    await expect(fs.copyParked(tx, 'in/a.txt', { hash: hashOf(A) })).rejects.toMatchObject({
      code: 'HASH_MISMATCH',
    });
    expect(await fs.parkedContent()).toEqual([hashOf(B)]);
    await expect(fs.copyParked(tx, 'in/b.txt', { hash: hashOf(B), size: B.length + 1 })).rejects.toMatchObject({
      code: 'HASH_MISMATCH',
    });
    expect(await fs.parkedContent()).toEqual([hashOf(B)]);
    for (const rel of ['in/a.txt', 'in/b.txt']) expect(existsSync(placed(workPath, rel))).toBe(false);
  });

  it('never reads outside the parked directory: the name is a hash, and a link in it is not followed', async () => {
    const fs = make(root);
    await interrupted(fs);
    const secret = 'a file outside the parked directory';
    await writeFile(path.join(base, 'secret'), secret);
    await symlink(path.join(base, 'secret'), path.join(parkedDir, hashOf(secret)));
    expect(await fs.parkedContent()).toEqual([hashOf(A), hashOf(B)].sort());
    const tx = txId();
    const { workPath } = await fs.begin(tx);
    await expect(fs.copyParked(tx, 'in/s.txt', { hash: hashOf(secret) })).rejects.toBeInstanceOf(NotFoundError);
    for (const hash of ['../../secret', '../secret', 'ABCDEFG', '']) {
      await expect(fs.copyParked(tx, 'in/s.txt', { hash })).rejects.toBeInstanceOf(ValidationError);
    }
    await expect(fs.copyParked(tx, '../escape', { hash: hashOf(A) })).rejects.toBeInstanceOf(ValidationError);
    expect(existsSync(placed(workPath, 'in/s.txt'))).toBe(false);
    // the next begin prunes what is no parked file
    await fs.rollback(tx);
    await fs.begin(txId());
    expect((await readdir(parkedDir)).sort()).toEqual([hashOf(A), hashOf(B)].sort());
  });

  it('an unknown or rolled-back transaction is NotFoundError, and nothing is placed', async () => {
    const fs = make(root);
    await interrupted(fs);
    await expect(fs.copyParked(txId(), 'in/a.txt', { hash: hashOf(A) })).rejects.toBeInstanceOf(NotFoundError);
    expect(await fs.parkedContent()).toEqual([hashOf(A), hashOf(B)].sort());
  });

  it('a hash-mismatched upload is never parked', async () => {
    const fs = make(root);
    const tx = txId();
    await fs.begin(tx);
    await expect(fs.writeFile(tx, 'in/x.txt', streamOf('other bytes'), { hash: hashOf(A) })).rejects.toMatchObject({
      code: 'HASH_MISMATCH',
    });
    await fs.rollback(tx);
    expect(await fs.parkedContent()).toEqual([]);
  });
});
