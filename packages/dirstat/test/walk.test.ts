// The recorded walk: sameWalk (native) and sameWalkJs must give the same
// answer for the same record and tree — true only while every recorded
// directory lists the same names and kinds and the checked entries the same
// stats; false (never an error) for a record that does not decode.
import { execFileSync } from 'node:child_process';
import {
  appendFileSync,
  chmodSync,
  mkdirSync,
  mkdtempSync,
  renameSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
  statSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { encodeWalk, Kind, listDir, lister, sameWalk, sameWalkJs, type ListedDir } from '../src/index.js';

const base = mkdtempSync(path.join(os.tmpdir(), 'dsg-walk-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));

let root = '';
let n = 0;
beforeEach(() => {
  root = path.join(base, `t${n++}`);
  mkdirSync(path.join(root, 'data', 'sub'), { recursive: true });
  mkdirSync(path.join(root, 'code'));
  writeFileSync(path.join(root, 'data', 'a.csv'), 'a,b\n1,2\n');
  writeFileSync(path.join(root, 'data', 'sub', 'b.bin'), Buffer.alloc(5000, 7));
  writeFileSync(path.join(root, 'code', 'run.py'), 'print(1)\n');
  writeFileSync(path.join(root, 'code', '.hidden'), 'h');
  // a big directory: the native check spreads its stats over threads
  for (let i = 0; i < 300; i++) writeFileSync(path.join(root, 'data', 'sub', `f${i}`), `${i}`);
});

/** The whole tree walked like dsg does (every directory, hidden ones not entered); files under data/ checked. */
function record(): Buffer {
  const dirs: ListedDir[] = [];
  const walk = (rel: string): void => {
    const list = listDir(rel ? `${root}/${rel}` : root);
    const checked = new Uint8Array(list.names.length);
    dirs.push({ rel, list, checked });
    list.names.forEach((name, i) => {
      if (name.startsWith('.')) return;
      const r = rel ? `${rel}/${name}` : name;
      if (list.kinds[i] === Kind.dir) walk(r);
      else if (r.startsWith('data/') && list.kinds[i] === Kind.file) checked[i] = 1;
    });
  };
  walk('');
  return encodeWalk(dirs);
}

/** Both checks, which must agree. */
async function same(rec: Buffer, at = root): Promise<boolean> {
  const [native, js] = await Promise.all([sameWalk(at, rec), sameWalkJs(at, rec)]);
  expect(native).toBe(js);
  return native;
}

describe('sameWalk', () => {
  it('runs natively on Linux (the build compiles the add-on)', () => {
    if (process.platform === 'linux') expect(lister()).toBe('native');
  });

  it('answers true for the tree as recorded, through a root given with a trailing slash too', async () => {
    const rec = record();
    expect(await same(rec)).toBe(true);
    expect(await same(rec, `${root}/`)).toBe(true);
  });

  const changes: [string, () => void][] = [
    ['a file added', () => writeFileSync(path.join(root, 'data', 'new.csv'), 'x')],
    ['a file added outside the checked ones', () => writeFileSync(path.join(root, 'code', 'new.py'), 'x')],
    ['a hidden file added', () => writeFileSync(path.join(root, 'data', '.DS_Store'), 'x')],
    ['a file removed', () => unlinkSync(path.join(root, 'data', 'sub', 'f150'))],
    ['a file renamed', () => renameSync(path.join(root, 'data', 'a.csv'), path.join(root, 'data', 'A.csv'))],
    ['a checked file grown', () => appendFileSync(path.join(root, 'data', 'sub', 'f299'), 'more')],
    ['a checked file touched', () => utimesSync(path.join(root, 'data', 'a.csv'), new Date(), new Date(2001, 1, 1))],
    [
      // same size, same mtime: only the ctime tells
      'a checked file rewritten with its size and mtime kept',
      () => {
        const f = path.join(root, 'data', 'a.csv');
        const st = statSync(f);
        writeFileSync(f, 'a,b\n3,4\n');
        utimesSync(f, st.atime, st.mtime);
      },
    ],
    [
      'a checked file made a link',
      () => {
        unlinkSync(path.join(root, 'data', 'a.csv'));
        symlinkSync('sub/b.bin', path.join(root, 'data', 'a.csv'));
      },
    ],
    [
      'a directory made a link to its copy',
      () => {
        execFileSync('cp', ['-a', path.join(root, 'data', 'sub'), path.join(root, 'elsewhere')]);
        rmSync(path.join(root, 'data', 'sub'), { recursive: true });
        symlinkSync(path.join(root, 'elsewhere'), path.join(root, 'data', 'sub'));
      },
    ],
    [
      'a directory replaced by a file',
      () => {
        rmSync(path.join(root, 'code'), { recursive: true });
        writeFileSync(path.join(root, 'code'), 'x');
      },
    ],
  ];
  for (const [what, change] of changes)
    it(`answers false after ${what}`, async () => {
      const rec = record();
      change();
      expect(await same(rec)).toBe(false);
    });

  it('does not look at the stats of an entry that is not checked', async () => {
    const rec = record();
    appendFileSync(path.join(root, 'code', 'run.py'), 'print(2)\n');
    expect(await same(rec)).toBe(true);
  });

  it('answers false for a directory it cannot list', async () => {
    if (process.getuid?.() === 0) {
      // root reads any directory: a directory gone stands in for one it may not read
      const rec = record();
      rmSync(path.join(root, 'code'), { recursive: true });
      expect(await same(rec)).toBe(false);
      return;
    }
    const rec = record();
    chmodSync(path.join(root, 'code'), 0o000);
    try {
      expect(await same(rec)).toBe(false);
    } finally {
      chmodSync(path.join(root, 'code'), 0o755);
    }
  });

  it('answers false, without throwing, for a record that does not decode', async () => {
    const rec = record();
    const bad = [
      Buffer.alloc(0),
      rec.subarray(0, rec.length - 1), // truncated
      Buffer.concat([rec, Buffer.from([0])]), // trailing bytes
      Buffer.from([0xff, 0xff, 0xff, 0xff]), // more directories than bytes
    ];
    for (const b of bad) expect(await same(b)).toBe(false);
  });

  it('refuses to record, and answers false for, a path that is not plainly relative', async () => {
    const l = listDir(root);
    const dir = (rel: string): ListedDir => ({ rel, list: l, checked: new Uint8Array(l.names.length) });
    for (const rel of ['..', 'a/../b', '/etc', 'a//b', './a', 'a/'])
      expect(() => encodeWalk([dir(rel)])).toThrow(/not a relative directory path/);
    // the same record with its path bytes rewritten to '..' (a damaged or crafted file): nothing outside is read
    const good = encodeWalk([dir('xy')]);
    const i = good.indexOf(Buffer.from('xy'));
    good.write('..', i, 'latin1');
    expect(await same(good)).toBe(false);
  });

  it('checks a tree of 50 directories of 300 files on several threads alike', async () => {
    for (let d = 0; d < 50; d++) {
      mkdirSync(path.join(root, 'data', `d${d}`));
      for (let i = 0; i < 300; i++) writeFileSync(path.join(root, 'data', `d${d}`, `f${i}`), '');
    }
    const rec = record();
    expect(await same(rec)).toBe(true);
    unlinkSync(path.join(root, 'data', 'd37', 'f299')); // the last entry of one directory in the middle
    expect(await same(rec)).toBe(false);
  });
});
