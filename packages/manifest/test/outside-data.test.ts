// Files outside every data directory: counted on the walks the scan and the
// status fast path already make, the same by both, junk directories left out.
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  decodeMirrorColumns,
  describeOutsideData,
  encodeMirror,
  Manifest,
  OutsideDataCounter,
  scanProject,
  treeIsLastSync,
} from '../src/index.js';
import { META, project } from './fast-status-fixtures.js';

const TASKS = {
  'README.md': 'root file',
  Makefile: 'root file',
  'tasks/import/input/raw.csv': 'data',
  'tasks/import/output/clean.csv': 'data',
  'tasks/import/hand/codes.csv': 'hand-made data, not in a data dir',
  'tasks/import/hand/more/names.csv': 'nested',
  'tasks/import/src/run.py': 'code',
  'tasks/import/src/__pycache__/run.cpython-312.pyc': 'junk (ignore rule, and a junk dir)',
  'tasks/import/node_modules/pkg/index.js': 'junk dir',
  'tasks/import/venv/lib/x.py': 'junk dir',
  'tasks/import/.venv/lib/y.py': 'hidden',
  '.git/config': 'hidden',
  'tasks/import/notes.tmp': 'ignored suffix',
  'tasks/import/scratch/big.bin': 'ignored by path',
};

describe('files outside the data dirs', () => {
  it('the scan counts them per directory, leaving out ignored, hidden and junk', async () => {
    const root = await project(TASKS);
    const r = await scanProject({
      root,
      dataDirs: ['input', 'output'],
      user: 'a@example.org',
      ignore: { paths: ['tasks/import/scratch'] },
    });
    expect(r.outside).toEqual({
      files: 5,
      directories: [
        { path: '', files: 2 },
        { path: 'tasks/import/hand', files: 1 },
        { path: 'tasks/import/hand/more', files: 1 },
        { path: 'tasks/import/src', files: 1 },
      ],
    });
    expect([...r.manifest.entries.keys()]).toEqual(['tasks/import/input/raw.csv', 'tasks/import/output/clean.csv']);
    expect(describeOutsideData(r.outside)).toBe(
      '5 files in 4 directories are not in any data dir: ./, tasks/import/hand/, tasks/import/hand/more/, tasks/import/src/',
    );
    expect(describeOutsideData(r.outside, 2)).toBe(
      '5 files in 4 directories are not in any data dir: ./, tasks/import/hand/, …',
    );
  });

  it('the status fast path counts the same as the scan', async () => {
    const root = await project(TASKS);
    const statCacheFile = path.join(root, '.dsg/stat-cache.json');
    const opts = {
      root,
      dataDirs: ['input', 'output'],
      ignore: { paths: ['tasks/import/scratch'] },
      statCacheFile,
    };
    const scan = await scanProject({ ...opts, user: 'a@example.org' });
    const last = new Manifest(scan.manifest.entries.values(), META);
    const columns = decodeMirrorColumns(encodeMirror(last, 'd'.repeat(64)), 'd'.repeat(64))!;
    const outside = new OutsideDataCounter();
    expect(await treeIsLastSync({ ...opts, last: columns, outside })).toBe(true);
    expect(outside.result()).toEqual(scan.outside);
  });

  it('none: no line', async () => {
    const root = await project({ 'input/a.csv': 'a', 'node_modules/x/y.js': 'junk' });
    const r = await scanProject({ root, dataDirs: ['input'], user: 'a@example.org' });
    expect(r.outside).toEqual({ files: 0, directories: [] });
    expect(describeOutsideData(r.outside)).toBeNull();
    expect(describeOutsideData({ files: 1, directories: [{ path: 'src', files: 1 }] })).toBe(
      '1 file in 1 directory is not in any data dir: src/',
    );
  });
});
