import { createHash } from 'node:crypto';
import { lstat, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { NotFoundError, ParkedStore, readAll, streamOf, type HasherFactory } from '../src/index.js';

const sha: HasherFactory = () => {
  const h = createHash('sha256');
  return { update: (c) => void h.update(c), digest: () => h.digest('hex').slice(0, 16) };
};
const hashOf = (s: string): string => createHash('sha256').update(s).digest('hex').slice(0, 16);

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'dsg-parked-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('ParkedStore', () => {
  it('parks by link and by verified copy; lists, opens, drops; the directory goes when emptied', async () => {
    const store = new ParkedStore(path.join(dir, 'parked'));
    expect(await store.hashes()).toEqual([]);
    const file = path.join(dir, 'upload');
    await writeFile(file, 'linked bytes');
    await store.link(file, hashOf('linked bytes'));
    await store.store(hashOf('copied bytes'), streamOf(Buffer.from('copied bytes')), sha);
    expect(await store.hashes()).toEqual([hashOf('linked bytes'), hashOf('copied bytes')].sort());
    expect((await lstat(path.join(dir, 'parked', hashOf('linked bytes')))).ino).toBe((await lstat(file)).ino);
    const fh = await store.open(hashOf('copied bytes'));
    expect((await readAll(fh.createReadStream())).toString()).toBe('copied bytes');
    await store.drop([hashOf('linked bytes'), hashOf('copied bytes')]);
    await expect(readdir(path.join(dir, 'parked'))).rejects.toThrow(/ENOENT/);
  });

  it('stores nothing whose bytes are not its hash; refuses links, non-hash names and expired content', async () => {
    let now = 1_000_000;
    const store = new ParkedStore(path.join(dir, 'parked'), { parkedTtlMs: 1000, now: () => now });
    await expect(store.store(hashOf('a'), streamOf(Buffer.from('b')), sha)).rejects.toMatchObject({
      code: 'HASH_MISMATCH',
    });
    expect(await readdir(path.join(dir, 'parked'))).toEqual([]); // no temp file left
    await writeFile(path.join(dir, 'secret'), 'outside');
    await symlink(path.join(dir, 'secret'), path.join(dir, 'parked', hashOf('outside')));
    await expect(store.open(hashOf('outside'))).rejects.toBeInstanceOf(NotFoundError);
    await expect(store.open('../secret')).rejects.toMatchObject({ code: 'VALIDATION' });
    await store.store(hashOf('x'), streamOf(Buffer.from('x')), sha);
    now = Date.now() + 10_000; // its ctime is now: past the 1 s TTL
    expect(await store.hashes()).toEqual([]);
    await expect(store.open(hashOf('x'))).rejects.toBeInstanceOf(NotFoundError);
    await store.prune(); // expired files and anything that is no parked file (the planted link)
    await expect(readdir(path.join(dir, 'parked'))).rejects.toThrow(/ENOENT/);
  });
});
