import { mkdir, mkdtemp, readFile, readdir, rm, stat, truncate, unlink, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { hashBytes, scanProject, StatCache, type ScanOptions } from '../src/index.js';
import { YOUNG } from './racy-window.js';

const tmpDirs: string[] = [];
afterAll(async () => {
  for (const d of tmpDirs) await rm(d, { recursive: true, force: true });
});
async function tempRoot(): Promise<string> {
  const d = await mkdtemp(path.join(os.tmpdir(), 'dsg-statcache-'));
  tmpDirs.push(d);
  return d;
}
const OLD = new Date('2025-06-01T17:11:12Z');
async function put(root: string, rel: string, content: string): Promise<void> {
  const full = path.join(root, rel);
  await mkdir(path.dirname(full), { recursive: true });
  await writeFile(full, content);
  await utimes(full, OLD, OLD);
}

const H = (s: string): string => hashBytes(s);
const key = (size: number, mtimeMs: number, ino: number, ctimeMs?: number) =>
  ctimeMs === undefined ? { size, mtimeMs, ino } : { size, mtimeMs, ino, ctimeMs };

describe('StatCache format 3', () => {
  it('round-trips rows, paths of every kind, and ctime; a row answers only its own stat', async () => {
    const dir = await tempRoot();
    const file = path.join(dir, 'stat-cache.bin');
    const c = await StatCache.load(file);
    expect(c.dirty).toBe(true); // missing: written by the next save
    const paths = ['input/a.csv', 'input/ünïcødé/漢字.txt', 'input/emoji 😀', 'input/2024', 'input/with "quotes"'];
    paths.forEach((p, i) => c.set(p, key(i * 1000, 1.7e12 + i + 0.123456, 10 + i, 1.7e12 + i + 0.5), H(p)));
    c.set('input/no-ctime', key(7, 1.6e12, 99), H('n'));
    await c.save(file);
    expect(c.dirty).toBe(false);

    const d = await StatCache.load(file);
    expect(d.dirty).toBe(false);
    expect(d.size).toBe(paths.length + 1);
    paths.forEach((p, i) => {
      expect(d.lookup(p, key(i * 1000, 1.7e12 + i + 0.123456, 10 + i, 1.7e12 + i + 0.5))).toBe(H(p));
      expect(d.lookup(p, key(i * 1000 + 1, 1.7e12 + i + 0.123456, 10 + i, 1.7e12 + i + 0.5))).toBeUndefined();
      expect(d.lookup(p, key(i * 1000, 1.7e12 + i + 0.124, 10 + i, 1.7e12 + i + 0.5))).toBeUndefined();
      expect(d.lookup(p, key(i * 1000, 1.7e12 + i + 0.123456, 11 + i, 1.7e12 + i + 0.5))).toBeUndefined();
      expect(d.lookup(p, key(i * 1000, 1.7e12 + i + 0.123456, 10 + i, 1.7e12 + i + 1))).toBeUndefined(); // ctime moved
    });
    // a row written without ctime matches on size, mtime and inode
    expect(d.lookup('input/no-ctime', key(7, 1.6e12, 99, 123))).toBe(H('n'));
    expect(d.lookup('input/other', key(7, 1.6e12, 99, 123))).toBeUndefined();
    // replacing a loaded row, then saving again
    d.set('input/a.csv', key(5, 1, 2, 3), H('new'));
    await d.save(file);
    const e = await StatCache.load(file);
    expect(e.lookup('input/a.csv', key(5, 1, 2, 3))).toBe(H('new'));
    expect(e.lookup('input/a.csv', key(0, 1.7e12 + 0.123456, 10, 1.7e12 + 0.5))).toBeUndefined();
  });

  it('an empty cache round-trips', async () => {
    const file = path.join(await tempRoot(), 'c.bin');
    await (await StatCache.load(file)).save(file);
    const c = await StatCache.load(file);
    expect(c.dirty).toBe(false);
    expect(c.size).toBe(0);
  });

  it('a truncated, corrupt, foreign or newer-version file is ignored whole (nothing trusted) and rewritten', async () => {
    const dir = await tempRoot();
    const file = path.join(dir, 'stat-cache.bin');
    const c = await StatCache.load(file);
    for (let i = 0; i < 50; i++) c.set(`input/f${i}`, key(i, 1e12 + i, i + 1, 2e12), H(String(i)));
    await c.save(file);
    const good = await readFile(file);
    const flip = (at: number): Buffer => {
      const b = Buffer.from(good);
      b[at] = b[at]! ^ 0x01;
      return b;
    };
    const variants: [string, Buffer][] = [
      ['empty', Buffer.alloc(0)],
      ['truncated header', good.subarray(0, 20)],
      ['truncated body', good.subarray(0, good.length - 1)],
      ['one byte longer', Buffer.concat([good, Buffer.from([0])])],
      ['a size flipped', flip(40 + 8 * 3)],
      ['a hash digit flipped', flip(40 + 32 * 50 + 5)],
      ['a path byte flipped', flip(good.length - 3)],
      ['the checksum flipped', flip(30)],
      ['magic', flip(0)],
      ['version 4', Buffer.concat([good.subarray(0, 8), Buffer.from([4, 0, 0, 0]), good.subarray(12)])],
      ['row count', flip(12)],
      ['random bytes', Buffer.from(Array.from({ length: 500 }, (_, i) => (i * 7919) & 0xff))],
      [
        'JSON of another version',
        Buffer.from('{"version":1,"entries":{"input/f1":[1,1000000000001,2,"' + H('1') + '"]}}'),
      ],
      ['bad JSON', Buffer.from('{not json')],
    ];
    for (const [what, bytes] of variants) {
      await writeFile(file, bytes);
      const d = await StatCache.load(file);
      expect(d.size, what).toBe(0);
      expect(d.dirty, what).toBe(true);
      for (let i = 0; i < 50; i++) expect(d.lookup(`input/f${i}`, key(i, 1e12 + i, i + 1, 2e12)), what).toBeUndefined();
    }
    // and a scan replaces such a file with a good one
    const root = await tempRoot();
    await put(root, 'input/a.txt', 'a');
    const cacheFile = path.join(root, '.dsg', 'stat-cache.bin');
    await mkdir(path.dirname(cacheFile));
    await writeFile(cacheFile, good.subarray(0, 100));
    await scanProject({ root, dataDirs: ['input'], user: 'u', statCacheFile: cacheFile });
    const after = await StatCache.load(cacheFile);
    expect(after.dirty).toBe(false);
    expect(after.size).toBe(1);
  });

  it('reads the JSON cache of earlier versions once, at the same path or beside it, and rewrites it in format 3', async () => {
    const root = await tempRoot();
    await put(root, 'input/a.txt', 'alpha');
    await put(root, 'input/b.txt', 'beta');
    const st = await stat(path.join(root, 'input/a.txt'));
    const stB = await stat(path.join(root, 'input/b.txt'));
    // a "hash" no real file has: a scan that returns it took it from the cache
    const legacy = {
      version: 2,
      entries: {
        'input/a.txt': [st.size, st.mtimeMs, st.ino, 'aaaaaaaaaaaaaaaa'],
        'input/b.txt': [stB.size, stB.mtimeMs, stB.ino + 1, 'bbbbbbbbbbbbbbbb'], // another inode: not trusted
        'input/gone.txt': [1, 1, 1, 'cccccccccccccccc'],
        'input/bad-row': [1, 2, 3],
      },
    };
    await mkdir(path.join(root, '.dsg'));
    const oldFile = path.join(root, '.dsg', 'stat-cache.json');
    const newFile = path.join(root, '.dsg', 'stat-cache.bin');
    const opts: ScanOptions = { root, dataDirs: ['input'], user: 'u', statCacheFile: newFile };
    const hashOf = async (o: ScanOptions, p: string): Promise<string | undefined> => {
      const e = (await scanProject(o)).manifest.entries.get(p);
      return e?.type === 'file' ? e.hash : undefined;
    };

    // beside the new name: read, then removed once the new file is written
    await writeFile(oldFile, JSON.stringify(legacy));
    expect(await hashOf(opts, 'input/a.txt')).toBe('aaaaaaaaaaaaaaaa');
    expect(await readdir(path.join(root, '.dsg'))).toEqual(['stat-cache.bin']);
    const c = await StatCache.load(newFile);
    expect(c.dirty).toBe(false);
    expect(c.size).toBe(2); // a.txt carried over; b.txt hashed and cached; gone.txt and the bad row dropped
    expect(await hashOf(opts, 'input/b.txt')).toBe(H('beta'));

    // at the path given (a caller that kept the old name): read once, rewritten in place
    await rm(newFile);
    await writeFile(oldFile, JSON.stringify(legacy));
    const sameName: ScanOptions = { ...opts, statCacheFile: oldFile };
    expect(await hashOf(sameName, 'input/a.txt')).toBe('aaaaaaaaaaaaaaaa');
    expect((await readFile(oldFile)).subarray(0, 8).toString('latin1')).toBe('dsgstat\n');
    expect(await hashOf(sameName, 'input/a.txt')).toBe('aaaaaaaaaaaaaaaa');
  });
});

describe('the stat cache in a scan', () => {
  it('drops the rows of files that are gone, and a warm no-change scan writes nothing', async () => {
    const root = await tempRoot();
    for (let i = 0; i < 30; i++) await put(root, `input/d${i % 3}/f${i}.txt`, `content ${i}`);
    const cacheFile = path.join(root, '.dsg', 'stat-cache.bin');
    const opts: ScanOptions = { root, dataDirs: ['input'], user: 'u', statCacheFile: cacheFile };
    await scanProject(opts);
    expect((await StatCache.load(cacheFile)).size).toBe(30);

    await unlink(path.join(root, 'input/d1/f4.txt'));
    await rm(path.join(root, 'input/d2'), { recursive: true });
    await put(root, 'input/d0/f0.txt~20250101T000000~', 'a conflict backup: never scanned');
    const r = await scanProject(opts);
    expect(r.stats).toMatchObject({ files: 19, hashed: 0 });
    const c = await StatCache.load(cacheFile);
    expect(c.size).toBe(19);
    expect(c.lookup('input/d1/f4.txt', { size: 9, mtimeMs: OLD.getTime(), ino: 0 })).toBeUndefined();

    const before = await stat(cacheFile);
    const again = await scanProject(opts);
    expect(again.stats).toMatchObject({ files: 19, hashed: 0 });
    const after = await stat(cacheFile);
    expect(after.mtimeMs).toBe(before.mtimeMs);
    expect(after.ino).toBe(before.ino); // not replaced by a rename either
    expect(await readdir(path.join(root, '.dsg'))).toEqual(['stat-cache.bin']); // no temp left
  });

  it('a file changed within the racy window keeps being hashed even when size and mtime come back the same', async () => {
    const root = await tempRoot();
    const file = path.join(root, 'input', 'fresh.txt');
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, 'one');
    const { mtime } = await stat(file); // just now: within the racy window of the scan
    const cacheFile = path.join(root, '.dsg', 'stat-cache.bin');
    // an hour's window: "just now" whatever the machine's speed (the default 2 s is not, on a busy one)
    const opts: ScanOptions = { root, dataDirs: ['input'], user: 'u', statCacheFile: cacheFile, ...YOUNG };
    const first = await scanProject(opts);
    expect(first.stats.hashed).toBe(1);
    expect((await StatCache.load(cacheFile)).size).toBe(0); // hashed, not cached

    // same size, same mtime (set back), other content: must be seen
    await writeFile(file, 'two');
    await utimes(file, mtime, mtime);
    const second = await scanProject(opts);
    expect(second.stats.hashed).toBe(1);
    const e = second.manifest.entries.get('input/fresh.txt');
    expect(e?.type === 'file' && e.hash).toBe(H('two'));
  });

  it('a cached file rewritten just now loses its row, so no older row answers for it later', async () => {
    const root = await tempRoot();
    await put(root, 'input/a.txt', 'old!');
    const cacheFile = path.join(root, '.dsg', 'stat-cache.bin');
    const opts: ScanOptions = { root, dataDirs: ['input'], user: 'u', statCacheFile: cacheFile };
    await scanProject(opts);
    expect((await StatCache.load(cacheFile)).size).toBe(1);
    await writeFile(path.join(root, 'input/a.txt'), 'new!'); // same size, mtime now: racy
    const r = await scanProject({ ...opts, ...YOUNG }); // racy however slow the machine
    expect(r.stats.hashed).toBe(1);
    expect((await StatCache.load(cacheFile)).size).toBe(0);
  });

  it('a rewrite that restores size and mtime on the same inode is caught by ctime', async () => {
    const root = await tempRoot();
    await put(root, 'input/a.txt', 'first');
    const cacheFile = path.join(root, '.dsg', 'stat-cache.bin');
    const opts: ScanOptions = { root, dataDirs: ['input'], user: 'u', statCacheFile: cacheFile };
    await scanProject(opts);
    const before = await stat(path.join(root, 'input/a.txt'));
    await new Promise((r) => setTimeout(r, 20)); // let the ctime clock tick (coarse on Linux)
    await writeFile(path.join(root, 'input/a.txt'), 'other'); // in place: same inode
    await utimes(path.join(root, 'input/a.txt'), OLD, OLD);
    const after = await stat(path.join(root, 'input/a.txt'));
    expect([after.ino, after.size, after.mtimeMs]).toEqual([before.ino, before.size, before.mtimeMs]);
    const r = await scanProject(opts);
    expect(r.stats.hashed).toBe(1);
    const e = r.manifest.entries.get('input/a.txt');
    expect(e?.type === 'file' && e.hash).toBe(H('other'));
  });

  it('a cache file that cannot be parsed never fails a scan, even truncated to nothing', async () => {
    const root = await tempRoot();
    await put(root, 'input/a.txt', 'x');
    const cacheFile = path.join(root, '.dsg', 'stat-cache.bin');
    const opts: ScanOptions = { root, dataDirs: ['input'], user: 'u', statCacheFile: cacheFile };
    await scanProject(opts);
    await truncate(cacheFile, 0);
    const r = await scanProject(opts);
    expect(r.stats.hashed).toBe(1);
    expect((await StatCache.load(cacheFile)).size).toBe(1);
  });
});
