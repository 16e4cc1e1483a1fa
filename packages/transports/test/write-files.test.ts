import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  DsgError,
  newTransactionId,
  StreamSplitter,
  ValidationError,
  type BatchFile,
  type ByteStream,
  type TransactionId,
} from '@dsg/contracts';
import { LocalTransport, MAX_BATCH_FILES, openRemote, type AgentClient } from '../src/index.js';
import { bytes, collect, fakeServer, hashOf, holder, snap, tempDir } from './helpers.js';

let tmp: { dir: string; remove(): Promise<void> };
let made: LocalTransport[];
beforeEach(async () => {
  tmp = await tempDir();
  made = [];
});
afterEach(async () => {
  for (const t of made) await t.end();
  await tmp.remove();
});

async function session(): Promise<{ c: AgentClient; tx: TransactionId; work: string }> {
  const t = new LocalTransport({ mode: 'in-process', server: fakeServer(tmp.dir).server });
  made.push(t);
  const c = await openRemote(t, 'proj');
  await c.lock(holder());
  const tx = newTransactionId();
  const { workPath } = await c.begin(tx);
  return { c, tx, work: workPath };
}

const batch = (files: [string, Buffer][]): BatchFile[] =>
  files.map(([path, d]) => ({ path, expected: { hash: hashOf(d), size: d.length } }));
/** The files' bytes back to back, in chunks that straddle the files' borders. */
const joined = (files: [string, Buffer][], chunk = 7): ByteStream =>
  bytes(Buffer.concat(files.map(([, d]) => d)), chunk);

describe('writeFiles: many files in one upload', () => {
  it('lands every file of the batch, verified, in one request; commit and read back', async () => {
    const { c, tx } = await session();
    const files: [string, Buffer][] = [
      ['a.csv', Buffer.from('alpha\n')],
      ['empty', Buffer.alloc(0)],
      ['d/e/f.bin', randomBytes(70_000)],
      ['d/g.txt', Buffer.from('g')],
    ];
    const before = (await c.stats()).session!;
    expect(await c.writeFiles(tx, batch(files), joined(files, 4096))).toEqual({ sizes: [6, 0, 70_000, 1] });
    const after = (await c.stats()).session!;
    expect(after.filesReceived - before.filesReceived).toBe(4);
    await c.commit(tx, snap('s1'));
    for (const [p, d] of files) expect(hashOf(await collect(await c.readFile(p)))).toBe(hashOf(d));
  });

  it('a file that does not verify fails the batch naming it; the files before it stay, none after it is written', async () => {
    const { c, tx, work } = await session();
    const files: [string, Buffer][] = [
      ['one', Buffer.from('first')],
      ['two', Buffer.from('second')],
      ['three', Buffer.from('third')],
    ];
    const wrong = batch(files);
    wrong[1] = { path: 'two', expected: { hash: hashOf(Buffer.from('other')), size: 6 } };
    const err = await c.writeFiles(tx, wrong, joined(files)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DsgError);
    expect((err as DsgError).code).toBe('HASH_MISMATCH');
    expect((err as Error).message).toContain('two');
    expect((await readdir(work)).sort()).toEqual(['one']);
    expect((await readFile(join(work, 'one'))).toString()).toBe('first');
    // the session goes on
    expect(await c.writeFiles(tx, batch(files.slice(1)), joined(files.slice(1)))).toEqual({ sizes: [6, 5] });
  });

  it('data shorter or longer than the sizes announce is refused, and nothing past the bad file lands', async () => {
    const { c, tx, work } = await session();
    const files: [string, Buffer][] = [
      ['x', Buffer.from('xxxx')],
      ['y', Buffer.from('yyyy')],
    ];
    const short = c.writeFiles(tx, batch(files), bytes(Buffer.from('xxxxyy')));
    await expect(short).rejects.toThrow(/2 bytes short of y/);
    expect(await readdir(work)).toEqual(['x']);
    const long = c.writeFiles(tx, batch(files), bytes(Buffer.from('xxxxyyyyzz')));
    await expect(long).rejects.toThrow(/more than the parts announced/);
  });

  it('refuses a hostile batch before writing anything: a bad path, a path twice, no size, too many files', async () => {
    const { c, tx, work } = await session();
    const d = Buffer.from('evil');
    const ok = { hash: hashOf(d), size: d.length };
    for (const files of [
      [
        { path: 'fine', expected: ok },
        { path: '../escape', expected: ok },
      ],
      [
        { path: 'fine', expected: ok },
        { path: '/etc/passwd', expected: ok },
      ],
      [
        { path: 'same', expected: ok },
        { path: 'same', expected: ok },
      ],
      [{ path: 'fine', expected: { hash: ok.hash } as BatchFile['expected'] }],
    ]) {
      await expect(c.writeFiles(tx, files, bytes(Buffer.concat([d, d])))).rejects.toBeInstanceOf(ValidationError);
    }
    const many = Array.from({ length: MAX_BATCH_FILES + 1 }, (_, i) => ({ path: `f${i}`, expected: ok }));
    await expect(c.writeFiles(tx, many, bytes(Buffer.alloc(0)))).rejects.toThrow(/1 to 1024 entries/);
    await expect(c.writeFiles(tx, [], bytes(Buffer.alloc(0)))).rejects.toThrow(/1 to 1024 entries/);
    expect(await readdir(work)).toEqual([]);
  });

  it('many batches in flight at once, each file where it belongs', async () => {
    const { c, tx } = await session();
    const all = Array.from({ length: 12 }, (_, b) =>
      Array.from({ length: 20 }, (_, i): [string, Buffer] => [`b${b}/f${i}`, randomBytes((b * 131 + i * 17) % 3000)]),
    );
    await Promise.all(all.map((files) => c.writeFiles(tx, batch(files), joined(files, 1000))));
    await c.commit(tx, snap('s1'));
    for (const [p, d] of all.flat()) expect(hashOf(await collect(await c.readFile(p)))).toBe(hashOf(d));
  });

  it('to an agent that predates batches (protocol 1.0), the same batch goes as one writeFile per file', async () => {
    const { c, tx, work } = await session();
    c.hello = { ...c.hello!, protocol: '1.0' };
    const files: [string, Buffer][] = [
      ['p/q', Buffer.from('q')],
      ['r', Buffer.from('rr')],
    ];
    expect(await c.writeFiles(tx, batch(files), joined(files, 1))).toEqual({ sizes: [1, 2] });
    expect(existsSync(join(work, 'p/q')) && existsSync(join(work, 'r'))).toBe(true);
  });
});

describe('StreamSplitter', () => {
  it('cuts a stream at the given sizes whatever the chunking, and checks the end', async () => {
    const data = randomBytes(1000);
    for (const chunk of [1, 3, 64, 999, 1000, 4096]) {
      const s = new StreamSplitter(bytes(data, chunk));
      const parts: Buffer[] = [];
      for (const n of [0, 10, 500, 0, 490]) parts.push(await collect(s.next(n)));
      await s.end();
      expect(parts.map((p) => p.length)).toEqual([0, 10, 500, 0, 490]);
      expect(Buffer.concat(parts).equals(data)).toBe(true);
    }
  });

  it('refuses a part asked for before the one before it was read to its end', () => {
    const s = new StreamSplitter(bytes(Buffer.from('abcdef')));
    s.next(3);
    expect(() => s.next(3)).toThrow(/before the part before it/);
  });
});

describe('readFiles: many files in one download', () => {
  async function committed(files: [string, Buffer][]): Promise<AgentClient> {
    const { c, tx } = await session();
    await c.writeFiles(tx, batch(files), joined(files, 4096));
    await c.commit(tx, snap('s1'));
    return c;
  }
  const files: [string, Buffer][] = [
    ['a', Buffer.from('aaa')],
    ['empty', Buffer.alloc(0)],
    ['d/b.bin', randomBytes(300_000)],
  ];
  const sized = (fs: [string, Buffer][]) => fs.map(([path, d]) => ({ path, size: d.length }));

  it('streams the files back to back, from the head and from a snapshot; the session counts each file', async () => {
    const c = await committed(files);
    for (const snapshotId of [undefined, 's1']) {
      const before = (await c.stats()).session!.filesSent;
      const s = new StreamSplitter(await c.readFiles(sized(files), snapshotId));
      for (const [p, d] of files) expect((await collect(s.next(d.length, p))).equals(d)).toBe(true);
      await s.end();
      expect((await c.stats()).session!.filesSent - before).toBe(3);
    }
  });

  it('a missing file, or one of another size than expected, breaks the stream naming it', async () => {
    const c = await committed(files);
    await expect(
      collect(
        await c.readFiles([
          { path: 'a', size: 3 },
          { path: 'nope', size: 1 },
        ]),
      ),
    ).rejects.toThrow(/nope is missing from the repository/);
    const err = await collect(await c.readFiles([{ path: 'a', size: 2 }])).catch((e: unknown) => e);
    expect((err as DsgError).code).toBe('HASH_MISMATCH');
    expect((err as Error).message).toMatch(/a in the repository: it is longer than the 2 bytes expected/);
    await expect(collect(await c.readFiles([{ path: 'nope', size: 3 }], 's1'))).rejects.toThrow(
      /nope is missing from the repository snapshot s1/,
    );
    await expect(collect(await c.readFiles([{ path: 'a', size: 3 }], 's9'))).rejects.toThrow(
      /snapshot s9 does not exist/,
    );
    // the session goes on
    expect((await collect(await c.readFiles([{ path: 'a', size: 3 }]))).toString()).toBe('aaa');
  });

  it('refuses hostile requests before reading anything', async () => {
    const c = await committed(files);
    for (const bad of [[{ path: '../x', size: 1 }], [{ path: 'a', size: -1 }], [{ path: 'a', size: 1.5 }]]) {
      await expect(c.readFiles(bad)).rejects.toBeInstanceOf(ValidationError);
    }
    await expect(c.readFiles([])).rejects.toThrow(/1 to 1024 entries/);
    await expect(c.readFiles([{ path: 'a', size: 3 }], '../s1')).rejects.toBeInstanceOf(ValidationError);
  });

  it('from an agent that predates batches (protocol 1.0): one read per file, the same stream and refusals', async () => {
    const c = await committed(files);
    c.hello = { ...c.hello!, protocol: '1.0' };
    expect((await collect(await c.readFiles(sized(files)))).equals(Buffer.concat(files.map(([, d]) => d)))).toBe(true);
    await expect(collect(await c.readFiles([{ path: 'nope', size: 1 }]))).rejects.toThrow(/nope is missing/);
  });
});
