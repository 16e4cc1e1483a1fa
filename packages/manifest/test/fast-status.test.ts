// The status fast path's parts: the mirror and the stat cache read as
// columns, and treeIsLastSync, which must say "unchanged" only where the
// full scan and classification find nothing, and otherwise say "not proved".
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  comparePaths,
  decodeMirror,
  decodeMirrorColumns,
  encodeMirror,
  hashBytes,
  Manifest,
  readStatColumns,
  StatCache,
  treeIsLastSync,
  type MirrorColumns,
} from '../src/index.js';
import { FILES, META, OLD, project, synced, tmpDirs } from './fast-status-fixtures.js';

describe('mirror columns', () => {
  it('hold the same paths and hashes as the decoded mirror, and refuse what decodeMirror refuses', async () => {
    const root = await project(FILES);
    const { last } = await synced(root);
    const digest = createHash('sha256').update('x').digest('hex');
    const buf = encodeMirror(last, digest);
    const m = decodeMirror(buf, digest)!;
    const c = decodeMirrorColumns(buf, digest)!;
    expect(c.n).toBe(m.entries.size);
    expect(c.metadata).toEqual(m.metadata);
    const got = [...Array(c.n).keys()].map((i) => [
      c.text.slice(c.pathAt[i], c.pathAt[i]! + c.pathLength[i]!),
      c.text.slice(c.hashAt[i], c.hashAt[i]! + c.hashLength[i]!),
    ]);
    expect(got).toEqual([...m.entries.values()].map((e) => [e.path, e.type === 'file' ? e.hash : '']));
    expect(decodeMirrorColumns(buf, 'e'.repeat(64))).toBeNull(); // another source's digest
    const bad = Buffer.from(buf);
    bad[bad.length - 3]! ^= 1;
    expect(decodeMirrorColumns(bad, digest)).toBeNull(); // damaged
  });
});

describe('stat cache in path order', () => {
  it('is written in path order, and a file in another order is read and marked for rewriting', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'dsg-fast-'));
    tmpDirs.push(dir);
    const file = path.join(dir, 'stat-cache.json');
    const c = await StatCache.load(file);
    for (const p of ['input/b', 'input/a/x', 'input/a.b', 'input/a'])
      c.set(p, { size: 1, mtimeMs: 1, ino: 1, ctimeMs: 1 }, 'a'.repeat(16));
    await c.save(file);
    const cols = readStatColumns(file)!;
    const paths = [...Array(cols.n).keys()].map((i) =>
      cols.paths.slice(cols.pathAt[i], cols.pathAt[i]! + cols.pathLength[i]!),
    );
    expect(paths).toEqual([...paths].sort(comparePaths));
    expect((await StatCache.load(file)).dirty).toBe(false);
    // rows out of order (as an earlier version wrote them): still read, rewritten at the next save
    const rows = ['input/b', 'input/a'];
    const blob = Buffer.from(`${rows.join('\0')}\0`, 'utf8');
    const out = Buffer.alloc(40 + 48 * rows.length + blob.length);
    out.write('dsgstat\n', 0, 'latin1');
    out.writeUInt32LE(3, 8);
    out.writeUInt32LE(rows.length, 12);
    out.writeUInt32LE(blob.length, 16);
    out.write('a'.repeat(16 * rows.length), 40 + 32 * rows.length, 'latin1');
    blob.copy(out, 40 + 48 * rows.length);
    out.write(hashBytes(out.subarray(40)), 24, 'latin1');
    await writeFile(file, out);
    const old = await StatCache.load(file);
    expect(old.size).toBe(2);
    expect(old.dirty).toBe(true);
    await old.save(file);
    const again = readStatColumns(file)!;
    expect(again.paths).toBe('input/a\0input/b\0');
  });
});

describe('treeIsLastSync', () => {
  it('unchanged: true, as the full path; siblings whose order depends on the "/" (a, a.b, a/, a0) included', async () => {
    const root = await project(FILES);
    const s = await synced(root);
    expect(await s.full()).toBe(true);
    expect(await s.fast()).toBe(true);
  });

  it('a same-size rewrite with the old mtime (new ctime), a removal, an addition: false, and the full path finds the change', async () => {
    for (const change of [
      async (root: string) => {
        await writeFile(path.join(root, 'input/a.csv'), 'a2');
        await utimes(path.join(root, 'input/a.csv'), OLD, OLD);
      },
      (root: string) => rm(path.join(root, 'output/deep/r.txt')),
      (root: string) => writeFile(path.join(root, 'input/new.csv'), 'n'),
      (root: string) =>
        mkdir(path.join(root, 'input/empty-dir-is-nothing/but-a-file-is'), { recursive: true }).then(() =>
          writeFile(path.join(root, 'input/empty-dir-is-nothing/but-a-file-is/f'), 'f'),
        ),
    ]) {
      const root = await project(FILES);
      const s = await synced(root);
      await change(root);
      expect(await s.fast()).toBe(false);
      expect(await s.full()).toBe(false);
    }
  });

  it('an empty new directory and a file outside the data directories change nothing, for both paths', async () => {
    const root = await project(FILES);
    const s = await synced(root);
    await mkdir(path.join(root, 'input/empty'));
    await writeFile(path.join(root, 'src/more.txt'), 'm');
    expect(await s.full()).toBe(true);
    expect(await s.fast()).toBe(true);
  });

  it('a stale stat cache row (content unchanged, mtime moved): not proved; the full path rehashes and finds nothing', async () => {
    const root = await project(FILES);
    const s = await synced(root);
    await utimes(path.join(root, 'input/a0'), new Date('2025-07-01T00:00:00Z'), new Date('2025-07-01T00:00:00Z'));
    expect(await s.fast()).toBe(false);
    expect(await s.full()).toBe(true);
  });

  it('a missing or damaged stat cache: not proved', async () => {
    const root = await project(FILES);
    const s = await synced(root);
    const good = await readFile(s.statCacheFile);
    const bad = Buffer.from(good);
    bad[bad.length - 2]! ^= 1;
    await writeFile(s.statCacheFile, bad);
    expect(await s.fast()).toBe(false);
    await rm(s.statCacheFile);
    expect(await s.fast()).toBe(false);
  });

  it('a last sync whose entries are out of order, repeated, or name the config file: false (every entry must meet the walk in order)', async () => {
    const root = await project(FILES);
    const s = await synced(root);
    const fastWith = (last: MirrorColumns): Promise<boolean> =>
      treeIsLastSync({ root, dataDirs: ['input', 'output'], statCacheFile: s.statCacheFile, last });
    const copy = (): MirrorColumns => ({
      ...s.columns,
      pathAt: s.columns.pathAt.slice(),
      pathLength: s.columns.pathLength.slice(),
      hashAt: s.columns.hashAt.slice(),
    });
    expect(await fastWith(copy())).toBe(true);
    const swapped = copy();
    for (const col of [swapped.pathAt, swapped.pathLength, swapped.hashAt]) [col[0], col[1]] = [col[1]!, col[0]!];
    expect(await fastWith(swapped)).toBe(false);
    const repeated = copy();
    for (const col of [repeated.pathAt, repeated.pathLength, repeated.hashAt]) col[1] = col[0]!;
    expect(await fastWith(repeated)).toBe(false);
    // an older dsg listed its config file among the entries: the scan drops it, so this is a change
    const first = [...s.last.entries.values()][0]!;
    await writeFile(path.join(root, '.dsgconfig.yml'), 'name: x\n');
    const withConfig = new Manifest([{ ...first, path: '.dsgconfig.yml' }, ...s.last.entries.values()], META);
    expect(await fastWith(decodeMirrorColumns(encodeMirror(withConfig, 'e'.repeat(64)), 'e'.repeat(64))!)).toBe(false);
  });

  it('a link, case twins, and a refused name are left to the full path', async () => {
    const withLink = await project(FILES);
    await symlink('a.csv', path.join(withLink, 'input/link'));
    expect(await (await synced(withLink)).fast()).toBe(false);

    const twins = await project({ 'input/A.csv': '1', 'input/a.csv': '2' });
    const t = await synced(twins);
    expect(await t.fast()).toBe(false);
    expect(await t.full()).toBe(false); // refused by the scan

    const cased = await project({ 'input/Data.csv': '1', 'input/other.csv': '2' });
    expect(await (await synced(cased)).fast()).toBe(true); // upper case alone is no twin

    const refused = await project(FILES);
    const s = await synced(refused);
    await writeFile(path.join(refused, 'input/bad\\name'), 'b');
    expect(await s.fast()).toBe(false);
    expect(await s.full()).toBe(false);
  });
});
