import { execFileSync } from 'node:child_process';
import { lstatSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync, linkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FIELDS, Kind, listDir, listDirJs, lister, type DirStats } from '../src/index.js';

const root = mkdtempSync(path.join(os.tmpdir(), 'dsg-dirstat-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** name → [kind, size, mtimeMs, ino, ctimeMs], whatever order the lister gave. */
function byName(l: DirStats): Map<string, number[]> {
  expect(l.kinds.length).toBe(l.names.length);
  expect(l.stats.length).toBe(l.names.length * FIELDS);
  return new Map(l.names.map((n, i) => [n, [l.kinds[i]!, ...l.stats.subarray(i * FIELDS, (i + 1) * FIELDS)]]));
}

describe('listDir', () => {
  const dir = path.join(root, 'mixed');
  mkdirSync(path.join(dir, 'sub'), { recursive: true });
  writeFileSync(path.join(dir, 'empty'), '');
  writeFileSync(path.join(dir, 'data.csv'), 'a,b\n1,2\n');
  writeFileSync(path.join(dir, 'café ünïcode'), 'x'.repeat(70_000));
  linkSync(path.join(dir, 'data.csv'), path.join(dir, 'hardlink'));
  // a time with nanoseconds that a double in milliseconds rounds: both listers must round alike
  execFileSync('touch', ['-m', '-d', '2001-02-03 04:05:06.987654321', path.join(dir, 'data.csv')]);
  symlinkSync('data.csv', path.join(dir, 'link'));
  symlinkSync('nowhere', path.join(dir, 'dangling'));
  execFileSync('mkfifo', [path.join(dir, 'fifo')]);
  writeFileSync(Buffer.from(`${dir}/bad-\xff-name`, 'latin1'), 'not utf-8');

  it('uses the native add-on on Linux (the build compiles it; CI runs here)', () => {
    if (process.platform !== 'linux') return; // elsewhere the JavaScript lister is the expected one
    expect(process.env.DSG_DIRSTAT).toBeUndefined();
    expect(lister()).toBe('native');
  });

  it('gives every entry with the kind and the stats fs.lstat gives, bit for bit', () => {
    const got = byName(listDir(dir));
    expect([...got.keys()].sort()).toEqual(
      ['bad-\uFFFD-name', 'café ünïcode', 'dangling', 'data.csv', 'empty', 'fifo', 'hardlink', 'link', 'sub'].sort(),
    );
    const kinds = Object.fromEntries([...got].map(([n, v]) => [n, v[0]]));
    expect(kinds).toEqual({
      'bad-\uFFFD-name': Kind.undecodable,
      'café ünïcode': Kind.file,
      dangling: Kind.link,
      'data.csv': Kind.file,
      empty: Kind.file,
      fifo: Kind.other,
      hardlink: Kind.file,
      link: Kind.link,
      sub: Kind.dir,
    });
    for (const [name, [kind, ...stats]] of got) {
      if (kind === Kind.undecodable) {
        expect(stats).toEqual([0, 0, 0, 0]);
        continue;
      }
      const st = lstatSync(path.join(dir, name));
      expect(stats.map((v, i) => Object.is(v, [st.size, st.mtimeMs, st.ino, st.ctimeMs][i]))).toEqual([
        true,
        true,
        true,
        true,
      ]);
    }
    expect(got.get('hardlink')![3]).toBe(got.get('data.csv')![3]); // same inode
    expect(got.get('café ünïcode')![1]).toBe(70_000);
  });

  /** Both listers, entry by entry (both list in byte order, so index i is the same entry). */
  const same = (d: string): void => {
    const a = listDir(d);
    const b = listDirJs(d);
    expect(a.names).toEqual(b.names);
    expect([...a.kinds]).toEqual([...b.kinds]);
    expect([...a.stats].map((x, i) => Object.is(x, b.stats[i]))).not.toContain(false);
  };

  it('answers exactly as the JavaScript lister does', () => same(dir));

  it('a valid name holding U+FFFD beside one that is not UTF-8: the same string, told apart alike', () => {
    const d = path.join(root, 'fffd');
    mkdirSync(d);
    writeFileSync(path.join(d, '\uFFFD'), 'valid');
    writeFileSync(Buffer.from(`${d}/\xff`, 'latin1'), 'not utf-8');
    const l = listDir(d);
    expect(l.names).toEqual(['\uFFFD', '\uFFFD']);
    expect([...l.kinds]).toEqual([Kind.file, Kind.undecodable]);
    same(d);
  });

  it('an entry whose full path is longer than lstat(2) takes: not statable by either lister', () => {
    let deep = path.join(root, 'deep');
    while (Buffer.byteLength(deep) < 3900) deep = path.join(deep, 'd'.repeat(200));
    mkdirSync(deep, { recursive: true });
    const long = 'f'.repeat(250);
    // created from inside (a path this long cannot be opened whole)
    execFileSync('sh', ['-c', 'cd "$1" && : > "$2" && : > short', 'sh', deep, long]);
    try {
      expect(() => lstatSync(path.join(deep, long))).toThrow(expect.objectContaining({ code: 'ENAMETOOLONG' }));
      const l = listDir(deep);
      expect(l.names).toEqual([long, 'short']);
      expect([...l.kinds]).toEqual([Kind.gone, Kind.file]);
      same(deep);
    } finally {
      execFileSync('sh', ['-c', 'cd "$1" && rm -f "$2"', 'sh', deep, long]); // rmSync cannot reach it either
    }
  });

  it('lists a directory of thousands of long names whole (the native buffers grow)', () => {
    const big = path.join(root, 'big');
    mkdirSync(big);
    const want: string[] = [];
    for (let i = 0; i < 5000; i++) {
      const name = `${String(i).padStart(5, '0')}-${'n'.repeat(40)}`;
      writeFileSync(path.join(big, name), String(i));
      want.push(name);
    }
    const l = listDir(big);
    expect(l.names).toEqual(want); // ASCII: byte order is string order
    expect([...l.kinds].every((k) => k === Kind.file)).toBe(true);
    const at = l.names.indexOf(want[4321]!);
    expect(l.stats[at * FIELDS]).toBe(4);
  });

  it('lists names in UTF-8 byte order, both listers (not UTF-16 order: an astral name sorts after U+FF21)', () => {
    const sorted = path.join(root, 'sorted');
    mkdirSync(sorted);
    const names = ['z', 'a', 'a.b', 'a-b', 'B', 'é', '\u{1F600}', '\uFF21', 'a0', '_'];
    for (const n of names) writeFileSync(path.join(sorted, n), n);
    const bytes = [...names].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
    expect(bytes.indexOf('\uFF21')).toBeLessThan(bytes.indexOf('\u{1F600}'));
    expect(listDir(sorted).names).toEqual(bytes);
    expect(listDirJs(sorted).names).toEqual(bytes);
  });

  it('lists an empty directory as nothing', () => {
    const empty = path.join(root, 'empty-dir');
    mkdirSync(empty);
    expect(listDir(empty)).toEqual({ names: [], kinds: new Uint8Array(0), stats: new Float64Array(0) });
  });

  it('throws as readdirSync does (with its code) when the directory cannot be listed, for both listers', () => {
    for (const list of [listDir, listDirJs]) {
      expect(() => list(path.join(root, 'missing'))).toThrow(expect.objectContaining({ code: 'ENOENT' }));
      expect(() => list(path.join(dir, 'empty'))).toThrow(expect.objectContaining({ code: 'ENOTDIR' }));
      expect(() => list(`${dir}\0/sub`)).toThrow(); // a NUL would name another path: refused, not truncated
    }
  });

  it('follows a link given as the directory itself (as readdirSync does), never one among the entries', () => {
    symlinkSync('sub', path.join(dir, 'sublink'));
    writeFileSync(path.join(dir, 'sub', 'inner'), 'i');
    try {
      expect(listDir(path.join(dir, 'sublink')).names).toEqual(['inner']);
      expect(byName(listDir(dir)).get('sublink')![0]).toBe(Kind.link);
    } finally {
      rmSync(path.join(dir, 'sublink'));
      rmSync(path.join(dir, 'sub', 'inner'));
    }
  });

  it('DSG_DIRSTAT=js chooses the JavaScript lister', () => {
    const src = path.resolve(import.meta.dirname, '..', 'dist', 'index.js');
    const run = (env: NodeJS.ProcessEnv): string =>
      execFileSync(
        process.execPath,
        ['--input-type=module', '-e', `import(${JSON.stringify(src)}).then((m) => console.log(m.lister()))`],
        {
          env: { ...process.env, ...env },
          encoding: 'utf8',
        },
      ).trim();
    expect(run({ DSG_DIRSTAT: 'js' })).toBe('js');
    if (process.platform === 'linux') expect(run({ DSG_DIRSTAT: '' })).toBe('native');
  });
});
