import { appendFileSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { lister } from '@dsg/dirstat';
import {
  appendFile,
  mkdir,
  mkdtemp,
  open,
  rm,
  stat,
  symlink,
  truncate,
  utimes,
  writeFile,
  readFile,
} from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { ProgressEvent } from '@dsg/contracts';
import {
  Manifest,
  buildSnapshot,
  conflictBackupName,
  scanProject,
  hashFile,
  serializeManifest,
  type ScanOptions,
  SMALL_FILE,
} from '../src/index.js';

const tmpDirs: string[] = [];
afterAll(async () => {
  for (const d of tmpDirs) await rm(d, { recursive: true, force: true });
});
async function tempRoot(): Promise<string> {
  const d = await mkdtemp(path.join(os.tmpdir(), 'dsg-scan-'));
  tmpDirs.push(d);
  return d;
}
const MTIME = new Date('2025-06-01T17:11:12Z'); // 2025-06-01T10:11:12-07:00
async function put(root: string, rel: string, content: string | Buffer = ''): Promise<void> {
  const full = path.join(root, rel);
  await mkdir(path.dirname(full), { recursive: true });
  await writeFile(full, content);
  await utimes(full, MTIME, MTIME);
}
async function link(root: string, rel: string, target: string): Promise<void> {
  const full = path.join(root, rel);
  await mkdir(path.dirname(full), { recursive: true });
  await symlink(target, full);
}

/**
 * openFile/openFileSync hooks that count every file the scanner opens for
 * reading (the async path for large files or parallelIo, the sync path for
 * small files), and the peak number of concurrently open async handles.
 */
function countingOpen(): {
  opened: string[];
  maxConcurrent: number;
  hooks: Pick<ScanOptions, 'openFile' | 'openFileSync'>;
} {
  const state = { opened: [] as string[], maxConcurrent: 0, active: 0 };
  return {
    get opened() {
      return state.opened;
    },
    get maxConcurrent() {
      return state.maxConcurrent;
    },
    hooks: {
      openFileSync: (f: string) => {
        state.opened.push(f);
        return openSync(f, 'r');
      },
      openFile: async (f: string) => {
        state.opened.push(f);
        state.active++;
        state.maxConcurrent = Math.max(state.maxConcurrent, state.active);
        const fh = await open(f, 'r');
        const close = fh.close.bind(fh);
        fh.close = async () => {
          state.active--;
          await close();
        };
        // widen the window in which several hashes overlap
        await new Promise((r) => setTimeout(r, 2));
        return fh;
      },
    },
  };
}

describe('scanProject: the worked example (docs/ARCHITECTURE.md §2) on a real tree', () => {
  it('reproduces the file hashes, entries_hash and snapshot hashes', async () => {
    const root = await tempRoot();
    await put(root, 'input/a.csv', 'id,name\n1,Ana\n2,Bo\n');
    await put(root, 'input/b.txt', '');
    await put(root, 'output/r\u00e9sum\u00e9.csv', 'x\n'.repeat(1000));
    await link(root, 'output/latest.csv', '../input/a.csv');
    await put(root, '.dsg/last-sync.json', '{}'); // never scanned

    const { manifest, warnings, stats } = await scanProject({
      root,
      dataDirs: ['input', 'output'],
      user: 'ana@example.org',
    });
    expect(warnings).toEqual([]);
    expect(stats).toEqual({ files: 3, hashed: 3, bytesHashed: 2019 });
    expect([...manifest.entries.values()]).toEqual([
      {
        type: 'file',
        path: 'input/a.csv',
        user: 'ana@example.org',
        filesize: 19,
        mtime: '2025-06-01T10:11:12-07:00',
        hash: '1d812414f9aee671',
      },
      {
        type: 'file',
        path: 'input/b.txt',
        user: 'ana@example.org',
        filesize: 0,
        mtime: '2025-06-01T10:11:12-07:00',
        hash: '2d06800538d394c2',
      },
      { type: 'link', path: 'output/latest.csv', user: 'ana@example.org', reference: '../input/a.csv' },
      {
        type: 'file',
        path: 'output/r\u00e9sum\u00e9.csv',
        user: 'ana@example.org',
        filesize: 2000,
        mtime: '2025-06-01T10:11:12-07:00',
        hash: '98112583ce11e659',
      },
    ]);
    const s1 = buildSnapshot(manifest.entries.values(), {
      snapshotId: 's1',
      previous: null,
      message: 'first import',
      user: 'ana@example.org',
      createdAt: new Date(),
      projectConfig: null,
    });
    expect(s1.metadata?.entries_hash).toBe('d73f84299f6a9f7d');
    expect(s1.metadata?.snapshot_hash).toBe('1b73b31cb6cdaee4');
    const s2 = buildSnapshot(manifest.entries.values(), {
      snapshotId: 's2',
      previous: s1.metadata,
      message: 'second',
      user: 'ana@example.org',
      createdAt: new Date('2025-06-01T17:15:00Z'),
      projectConfig: { name: 'demo', data_dirs: ['input', 'output'] },
    });
    expect(s2.metadata?.snapshot_hash).toBe('beddf1425833c764');
    // scanned tree → snapshot → bytes: exactly the golden file
    expect(serializeManifest(s2)).toBe(
      readFileSync(new URL('./fixtures/worked-example-s2.json', import.meta.url), 'utf8'),
    );
  });
});

describe('scanProject: names, ignores and links', () => {
  it('walks nested dirs, ignores, records inside links, refuses escaping/absolute links and bad names', async () => {
    const root = await tempRoot();
    await put(root, '.dsgconfig.yml', 'name: demo\n');
    await put(root, 'input/a.csv', 'a');
    await put(root, 'input/a/b/c/deep.txt', 'deep');
    await put(root, 'frozen/f.bin', 'f');
    await put(root, 'frozen/skipdir/x.bin', 'x');
    await put(root, 'elsewhere/not-data.txt', 'x'); // not a data dir
    await put(root, '.dsg/archive/s1-sync.json.lz4', 'x');
    // ignored
    await put(root, 'input/.DS_Store', 'x');
    await put(root, 'input/__pycache__/m.cpython.pyc', 'x');
    await put(root, 'input/a/b/__pycache__/n.txt', 'x');
    await put(root, 'input/scratch.tmp', 'x');
    await put(root, 'input/a/mod.pyc', 'x');
    await put(root, 'input/skip.me', 'x');
    await put(root, 'input/a.csv~20250101T101010~', 'backup');
    await put(root, conflictBackupName('input/a/b/c/deep.txt', new Date('2025-06-01T17:11:12Z')), 'backup');
    // links
    await link(root, 'output/latest.csv', '../input/a.csv');
    await link(root, 'output/sub/ok.txt', '../../input/a/b/c/deep.txt'); // two levels from output/sub: inside
    await link(root, 'output/sub/escape.txt', '../../../etc/passwd'); // the ancestor's off-by-one let this through
    await link(root, 'input/up.txt', '../../outside');
    await link(root, 'input/abs.txt', '/etc/passwd');
    await link(root, 'input/dir-link', 'a/b');
    // refused names
    await put(root, 'input/what?.csv', 'x');
    await put(root, 'input/con.txt', 'x');
    await put(root, 'input/draft~', 'x');
    await put(root, 'input/~lock', 'x');
    await put(root, 'input/ctrl\u0001.txt', 'x');
    await put(root, 'input/ lead.txt', 'x');
    await put(root, 'input/bidi\u202e.txt', 'x');
    await put(root, 'output/re\u0301sume\u0301.csv', 'nfd'); // NFD
    await put(root, 'input/bad|dir/inner.txt', 'x'); // a refused directory hides its subtree
    execFileSync('mkfifo', [path.join(root, 'input/pipe')]); // never opened: it would block

    const opts: ScanOptions = {
      root,
      dataDirs: ['input', 'output', 'frozen', 'missing'],
      ignore: {
        names: ['.DS_Store', '__pycache__'],
        suffixes: ['.tmp', '.pyc'],
        paths: ['input/skip.me', 'frozen/skipdir/'],
      },
      statCacheFile: path.join(root, 'frozen', 'cache.json'), // inside a data dir: never recorded
      user: 'u@example.org',
    };
    const { manifest, warnings } = await scanProject(opts);
    // the pooled metadata mode (network filesystems) finds exactly the same
    const pooled = await scanProject({ ...opts, parallelIo: true, concurrency: 2 });
    expect(await readFile(path.join(root, 'frozen', 'cache.json'), 'utf8')).toContain('frozen/f.bin\0'); // the cache's path list
    expect(pooled.manifest).toEqual(manifest);
    expect(pooled.warnings).toEqual(warnings);
    // .dsgconfig.yml is never an entry: it travels beside the manifest, as the original keeps it
    expect([...manifest.entries.keys()]).toEqual([
      'frozen/f.bin',
      'input/a.csv',
      'input/a/b/c/deep.txt',
      'input/dir-link',
      'output/latest.csv',
      'output/sub/ok.txt',
    ]);
    expect(manifest.entries.get('output/sub/ok.txt')).toEqual({
      type: 'link',
      path: 'output/sub/ok.txt',
      user: 'u@example.org',
      reference: '../../input/a/b/c/deep.txt',
    });
    expect(manifest.entries.get('input/dir-link')).toMatchObject({ type: 'link', reference: 'a/b' });
    const byPath = new Map(warnings.map((w) => [w.path, w.reason]));
    expect([...byPath.keys()].sort()).toEqual(
      [
        'input/ lead.txt',
        'input/abs.txt',
        'input/bad|dir',
        'input/bidi\u202e.txt',
        'input/con.txt',
        'input/ctrl\u0001.txt',
        'input/draft~',
        'input/pipe',
        'input/up.txt',
        'input/what?.csv',
        'input/~lock',
        'output/re\u0301sume\u0301.csv',
        'output/sub/escape.txt',
      ].sort(),
    );
    expect(byPath.get('input/abs.txt')).toMatch(/absolute/);
    expect(byPath.get('input/up.txt')).toMatch(/escapes/);
    expect(byPath.get('output/sub/escape.txt')).toMatch(/escapes/);
    expect(byPath.get('output/re\u0301sume\u0301.csv')).toMatch(/NFC/);
    expect(warnings.find((w) => w.path === 'output/re\u0301sume\u0301.csv')).toMatchObject({
      kind: 'name',
      nfc: 'output/r\u00e9sum\u00e9.csv',
    });
    expect(warnings.find((w) => w.path === 'input/abs.txt')).toMatchObject({ kind: 'link' });
    expect(warnings.find((w) => w.path === 'input/pipe')).toMatchObject({ kind: 'special' });
    expect(warnings.find((w) => w.path === 'input/con.txt')?.nfc).toBeUndefined();
    expect(byPath.get('input/what?.csv')).toMatch(/illegal character "\?"/);
    expect(byPath.get('input/con.txt')).toMatch(/reserved/);
    expect(byPath.get('input/ctrl\u0001.txt')).toMatch(/U\+0001/);
    expect(byPath.get('input/bidi\u202e.txt')).toMatch(/U\+202E/);
    expect(byPath.get('input/ lead.txt')).toMatch(/whitespace/);
    expect(byPath.get('input/draft~')).toMatch(/~/);
  });

  it('finds data dirs at any depth (the task layout) and leaves out hidden names and everything else', async () => {
    const root = await tempRoot();
    await put(root, 'tasks/clean/input/a.csv', 'a');
    await put(root, 'tasks/clean/output/b.csv', 'b');
    await put(root, 'tasks/clean/src/clean.py', 'code'); // not data
    await put(root, 'tasks/clean/input/.gitkeep', ''); // hidden: out, as the original scans
    await put(root, 'tasks/.cache/input/x.csv', 'x'); // under a hidden dir: out
    await put(root, 'input/top.csv', 't');
    await put(root, 'src/we|ird/notes.txt', 'x'); // an odd name outside the data dirs blocks nothing
    await put(root, 'src/input', 'a FILE named input is not a data dir');
    await put(root, 'README.md', 'r');
    await put(root, '.git/input/config', 'never');
    const { manifest, warnings } = await scanProject({ root, dataDirs: ['input', 'output'], user: 'u@example.org' });
    expect([...manifest.entries.keys()]).toEqual([
      'input/top.csv',
      'tasks/clean/input/a.csv',
      'tasks/clean/output/b.csv',
    ]);
    expect(warnings).toEqual([]);
  });

  it('keeps the previous user for unchanged entries and takes the scanning user for changed ones', async () => {
    const root = await tempRoot();
    await put(root, 'input/same.txt', 'same');
    await put(root, 'input/changed.txt', 'new content');
    await link(root, 'input/l', 'same.txt');
    const first = await scanProject({ root, dataDirs: ['input'], user: 'bo@example.org' });
    const prev = new Manifest(
      [...first.manifest.entries.values()].map((e) =>
        e.path === 'input/changed.txt' && e.type === 'file' ? { ...e, hash: '0000000000000001' } : e,
      ),
    );
    const { manifest } = await scanProject({ root, dataDirs: ['input'], user: 'ana@example.org', previous: prev });
    expect(manifest.entries.get('input/same.txt')?.user).toBe('bo@example.org');
    expect(manifest.entries.get('input/l')?.user).toBe('bo@example.org');
    expect(manifest.entries.get('input/changed.txt')?.user).toBe('ana@example.org');
  });

  for (const mode of ['sync', 'parallelIo'] as const) {
    it(`re-hashes a file that changes while it is read; gives up on one that never settles (${mode})`, async () => {
      const root = await tempRoot();
      await put(root, 'input/growing.log', 'line 1\n');
      const file = path.join(root, 'input/growing.log');
      const hooks = (
        always: boolean,
        counter: { n: number },
      ): Pick<ScanOptions, 'openFile' | 'openFileSync' | 'parallelIo'> =>
        mode === 'sync'
          ? {
              openFileSync: (f) => {
                const fd = openSync(f, 'r');
                if (always || counter.n++ === 0) appendFileSync(f, 'line 2\n'); // a writer appends after we opened
                return fd;
              },
            }
          : {
              parallelIo: true,
              openFile: async (f) => {
                const fh = await open(f, 'r');
                if (always || counter.n++ === 0) await appendFile(f, 'line 2\n');
                return fh;
              },
            };
      const counter = { n: 0 };
      const { manifest, stats } = await scanProject({ root, dataDirs: ['input'], user: 'u', ...hooks(false, counter) });
      expect(counter.n).toBe(2);
      expect(stats.hashed).toBe(2);
      expect(manifest.entries.get('input/growing.log')).toMatchObject({ filesize: 14, hash: await hashFile(file) });
      await expect(
        scanProject({ root, dataDirs: ['input'], user: 'u', ...hooks(true, { n: 0 }) }),
      ).rejects.toMatchObject({ code: 'SCAN_UNSTABLE' });
    });
  }

  it('refuses a missing project root instead of scanning it as empty', async () => {
    const root = await tempRoot();
    await expect(scanProject({ root: path.join(root, 'nope'), dataDirs: ['input'], user: 'u' })).rejects.toMatchObject({
      code: 'NOT_FOUND',
    });
  });

  it('refuses an unsafe data directory', async () => {
    const root = await tempRoot();
    await expect(scanProject({ root, dataDirs: ['../etc'], user: 'u' })).rejects.toMatchObject({
      code: 'VALIDATION',
      details: { field: 'data_dirs' },
    });
    await expect(scanProject({ root, dataDirs: ['.dsg'], user: 'u' })).rejects.toMatchObject({ code: 'VALIDATION' });
  });
});

describe('scanProject: stat cache and bounded pool', () => {
  it('a second scan of an unchanged tree opens no file; a changed file is hashed again', async () => {
    const root = await tempRoot();
    for (let i = 0; i < 40; i++) await put(root, `input/d${i % 4}/f${i}.txt`, `content ${i}`);
    const cacheFile = path.join(root, '.dsg', 'stat-cache.json');
    const c1 = countingOpen();
    const first = await scanProject({ root, dataDirs: ['input'], user: 'u', statCacheFile: cacheFile, ...c1.hooks });
    expect(c1.opened).toHaveLength(40);
    expect(first.stats.hashed).toBe(40);

    const events: ProgressEvent[] = [];
    await scanProject({ root, dataDirs: ['input'], user: 'u', onProgress: (e) => events.push(e) });
    expect(events.at(-1)).toMatchObject({ phase: 'scan', files: 40, bytes: first.stats.bytesHashed });

    const cacheMtime = (await stat(cacheFile)).mtimeMs;
    const c2 = countingOpen();
    const second = await scanProject({ root, dataDirs: ['input'], user: 'u', statCacheFile: cacheFile, ...c2.hooks });
    expect(c2.opened).toEqual([]);
    expect(second.stats).toEqual({ files: 40, hashed: 0, bytesHashed: 0 });
    expect((await stat(cacheFile)).mtimeMs).toBe(cacheMtime); // nothing new: the cache is not rewritten
    expect([...second.manifest.entries.values()]).toEqual([...first.manifest.entries.values()]);

    // same size, new content and mtime → re-hashed, with the new hash
    await put(root, 'input/d1/f5.txt', 'CONTENT 5');
    await utimes(
      path.join(root, 'input/d1/f5.txt'),
      new Date('2025-07-01T00:00:00Z'),
      new Date('2025-07-01T00:00:00Z'),
    );
    const c3 = countingOpen();
    const third = await scanProject({ root, dataDirs: ['input'], user: 'u', statCacheFile: cacheFile, ...c3.hooks });
    expect(c3.opened).toEqual([path.join(root, 'input/d1/f5.txt')]);
    const e = third.manifest.entries.get('input/d1/f5.txt');
    expect(e?.type === 'file' && e.hash).toBe(await hashFile(path.join(root, 'input/d1/f5.txt')));

    // a corrupt cache is only a cache: everything is hashed again, no error
    await writeFile(cacheFile, '{not json');
    const c4 = countingOpen();
    await scanProject({ root, dataDirs: ['input'], user: 'u', statCacheFile: cacheFile, ...c4.hooks });
    expect(c4.opened).toHaveLength(40);
    expect((await readFile(cacheFile)).subarray(0, 8).toString('latin1')).toBe('dsgstat\n'); // rewritten, format 3
  });

  it('lists with the native lister, and a directory it cannot fully stat is read as before: the same entries either way', async () => {
    const root = await tempRoot();
    await put(root, 'input/a/x.csv', 'x');
    await put(root, 'input/b/y.csv', 'y');
    await link(root, 'input/b/l', 'y.csv');
    await put(root, 'src/notes.txt', 'outside');
    // a name that is not UTF-8 beside a file: the native listing marks it, and that directory falls back to
    // readdir + lstat, where (as always) no string reaches the file and it is passed over
    writeFileSync(Buffer.from(`${root}/input/b/bad-\xff.csv`, 'latin1'), 'z');
    const native = await scanProject({ root, dataDirs: ['input'], user: 'u' });
    const viaLstat = await scanProject({ root, dataDirs: ['input'], user: 'u', parallelIo: true });
    expect(lister()).toBe(process.platform === 'linux' ? 'native' : lister());
    expect([...native.manifest.entries.keys()]).toEqual(['input/a/x.csv', 'input/b/l', 'input/b/y.csv']);
    expect(native.manifest).toEqual(viaLstat.manifest);
    expect(native.warnings).toEqual(viaLstat.warnings);
    expect(native.outside).toEqual({ files: 1, directories: [{ path: 'src', files: 1 }] });
  });

  it('parallelIo hashes through a pool bounded by concurrency, with the same result', async () => {
    const root = await tempRoot();
    for (let i = 0; i < 30; i++) await put(root, `input/f${i}.txt`, `content ${i}`);
    const c = countingOpen();
    const pooled = await scanProject({
      root,
      dataDirs: ['input'],
      user: 'u',
      parallelIo: true,
      concurrency: 3,
      ...c.hooks,
    });
    expect(c.opened).toHaveLength(30);
    expect(c.maxConcurrent).toBeGreaterThan(1);
    expect(c.maxConcurrent).toBeLessThanOrEqual(3);
    expect(pooled.manifest).toEqual((await scanProject({ root, dataDirs: ['input'], user: 'u' })).manifest);
  });

  it('default mode walks one file at a time yet hashes large files in parallel (bounded); an unreadable one fails the scan', async () => {
    const root = await tempRoot();
    const big = Buffer.alloc(SMALL_FILE + 1, 7);
    for (let i = 0; i < 12; i++) await put(root, `input/d${i % 3}/big${i}.bin`, big);
    for (let i = 0; i < 20; i++) await put(root, `input/d${i % 3}/small${i}.txt`, `s${i}`);
    const c = countingOpen();
    const r = await scanProject({ root, dataDirs: ['input'], user: 'u', concurrency: 2, ...c.hooks });
    expect(r.manifest.entries.size).toBe(32);
    expect(c.maxConcurrent).toBeGreaterThan(1);
    expect(c.maxConcurrent).toBeLessThanOrEqual(2);
    expect(r.manifest).toEqual(
      (await scanProject({ root, dataDirs: ['input'], user: 'u', parallelIo: true })).manifest,
    );
    const failing: Pick<ScanOptions, 'openFile'> = {
      openFile: async (f) => {
        if (f.endsWith('big5.bin')) throw Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' });
        return open(f, 'r');
      },
    };
    await expect(scanProject({ root, dataDirs: ['input'], user: 'u', ...failing })).rejects.toMatchObject({
      code: 'SCAN_UNREADABLE',
    });
  });

  it('a file modified just now is not trusted from the cache (racy clean)', async () => {
    const root = await tempRoot();
    await mkdir(path.join(root, 'input'));
    await writeFile(path.join(root, 'input/fresh.txt'), 'fresh');
    const cacheFile = path.join(root, 'cache.json');
    await scanProject({ root, dataDirs: ['input'], user: 'u', statCacheFile: cacheFile });
    const c = countingOpen();
    await scanProject({ root, dataDirs: ['input'], user: 'u', statCacheFile: cacheFile, ...c.hooks });
    expect(c.opened).toHaveLength(1);
  });

  it('hashes a 1 GiB sparse file in bounded memory', async () => {
    const root = await tempRoot();
    const big = path.join(root, 'input', 'big.bin');
    await mkdir(path.dirname(big), { recursive: true });
    await writeFile(big, 'head');
    await truncate(big, 1024 ** 3);
    const before = process.memoryUsage().rss;
    let peak = before;
    const timer = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss);
    }, 5);
    try {
      const { manifest, stats } = await scanProject({ root, dataDirs: ['input'], user: 'u' });
      expect(stats.bytesHashed).toBe(1024 ** 3);
      const e = manifest.entries.get('input/big.bin');
      expect(e).toMatchObject({ type: 'file', filesize: 1024 ** 3 });
      expect(e?.type === 'file' && e.hash).toMatch(/^[0-9a-f]{16}$/);
    } finally {
      clearInterval(timer);
    }
    peak = Math.max(peak, process.memoryUsage().rss);
    expect(peak - before).toBeLessThan(96 * 1024 * 1024);
  });
});
