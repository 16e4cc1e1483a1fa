import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { mkdtemp, open, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  PARKED_TTL_MS,
  parkedExpired,
  parkedName,
  parksUpload,
  readAll,
  streamOf,
  streamVerified,
  ValidationError,
  type HasherFactory,
} from '../src/index.js';

// any streaming hash will do here; dsg's is xxh3-64 (@dsg/manifest)
const sha: HasherFactory = () => {
  const h = createHash('sha256');
  return { update: (c) => void h.update(c), digest: () => h.digest('hex') };
};
const shaOf = (s: string): string => createHash('sha256').update(s).digest('hex');

async function* chunks(...parts: string[]): AsyncIterable<Uint8Array> {
  for (const p of parts) yield await Promise.resolve(new TextEncoder().encode(p));
}

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'dsg-verified-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function write(
  expected: { hash: string; size?: number; mtime?: string },
  o: Parameters<typeof streamVerified>[5] = {},
): Promise<number> {
  const fh = await open(path.join(dir, 'f'), constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL);
  try {
    return await streamVerified(fh, 'input/f', chunks('hello ', 'world'), expected, sha, o);
  } finally {
    await fh.close();
  }
}

describe('streamVerified', () => {
  it('writes the bytes, returns their count, sets the mtime', async () => {
    const n = await write(
      { hash: shaOf('hello world').toUpperCase(), size: 11, mtime: '2020-01-02T03:04:05Z' },
      { fsync: true },
    );
    expect(n).toBe(11);
    expect(await readFile(path.join(dir, 'f'), 'utf8')).toBe('hello world');
    expect((await stat(path.join(dir, 'f'))).mtime.toISOString()).toBe('2020-01-02T03:04:05.000Z');
  });

  it('refuses another hash or size with HASH_MISMATCH naming the path', async () => {
    await expect(write({ hash: shaOf('other') })).rejects.toMatchObject({
      code: 'HASH_MISMATCH',
      details: { path: 'input/f', field: 'hash' },
    });
    await rm(path.join(dir, 'f'));
    const e = await write({ hash: shaOf('hello world'), size: 12 }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ValidationError);
    expect(e).toMatchObject({ code: 'HASH_MISMATCH', message: 'size mismatch for input/f: expected 12, got 11' });
  });

  it('refuses an expected hash that is not 1–128 hex digits before writing a byte', async () => {
    for (const hash of ['', 'xyz', '../0', 'a'.repeat(129)]) {
      await expect(write({ hash })).rejects.toMatchObject({
        code: 'VALIDATION',
        details: { path: 'input/f', field: 'hash' },
      });
      expect((await stat(path.join(dir, 'f'))).size).toBe(0);
      await rm(path.join(dir, 'f'));
    }
  });

  it("takes the caller's error for a mismatch", async () => {
    const e = await write(
      { hash: shaOf('other') },
      { mismatch: (m) => new Error(`${m.field}: ${m.expected} vs ${m.got}`) },
    ).catch((x: unknown) => x);
    expect((e as Error).message).toBe(`hash: ${shaOf('other')} vs ${shaOf('hello world')}`);
  });
});

describe('readAll / streamOf', () => {
  it('read a stream whole; make a one-chunk stream', async () => {
    expect((await readAll(chunks('a', 'bc', ''))).toString()).toBe('abc');
    expect((await readAll(streamOf(new Uint8Array([1, 2, 3])))).equals(Buffer.from([1, 2, 3]))).toBe(true);
  });
});

describe('parked content names and expiry', () => {
  it('a parked name is a lowercase hash; anything else is refused', () => {
    expect(parkedName('ABCDEF0123456789')).toBe('abcdef0123456789');
    for (const bad of ['', '../x', 'a/b', 'zz', '0'.repeat(129)])
      expect(() => parkedName(bad)).toThrow(ValidationError);
  });
  it('expires after the TTL, measured from its ctime', () => {
    expect(parkedExpired(0, PARKED_TTL_MS)).toBe(false);
    expect(parkedExpired(0, PARKED_TTL_MS + 1)).toBe(true);
    expect(parkedExpired(1000, 1500, 100)).toBe(true);
  });
});

describe('which uploads are parked', () => {
  it('data is, the repository metadata under .dsg/ is not', () => {
    expect(parksUpload('input/a.csv')).toBe(true);
    expect(parksUpload('.dsgconfig.yml')).toBe(true);
    expect(parksUpload('.dsg/last-sync.json')).toBe(false);
    expect(parksUpload('.dsg/archive/s1-sync.json.lz4')).toBe(false);
  });
});
