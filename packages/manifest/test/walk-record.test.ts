// The walk record: written only for a walk that proved the tree unchanged,
// bound to the last sync and the stat cache as they were before the walk
// read them; it answers with the facts it was written with while both files
// are those very ones, the scope is the same and the tree lists the same —
// and never otherwise (stale, damaged, another scope, a changed tree).
import { randomBytes } from 'node:crypto';
import { appendFileSync, existsSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { ListedDir } from '@dsg/dirstat';
import {
  OutsideDataCounter,
  treeIsLastSync,
  unchangedByRecord,
  walkInputs,
  writeWalkRecord,
  type UnchangedTree,
  type WalkRecordSource,
} from '../src/index.js';
import { FILES, project, synced } from './fast-status-fixtures.js';
import { YOUNG } from './racy-window.js';

const NOW = { racyMs: 0 }; // the fixtures' files are new: their times are trusted at once here

/**
 * Until the clock (milliseconds) has passed the files' last change: with no
 * racy window a file changed in this very millisecond is still not settled
 * (its ctime has nanoseconds, the clock read here does not).
 */
async function pastChangeOf(...files: string[]): Promise<void> {
  const last = Math.max(...files.map((f) => statSync(f).ctimeMs));
  while (Date.now() <= last + 1) await new Promise((r) => setTimeout(r, 2));
}

/** A synced project, proved unchanged with its listings kept, and what a record of it is made from. */
async function proved() {
  const root = await project(FILES);
  const { columns, statCacheFile } = await synced(root);
  const src: WalkRecordSource = {
    root,
    record: path.join(root, '.dsg/last-sync.walk'),
    lastSync: path.join(root, '.dsg/last-sync.json'),
    statCache: statCacheFile,
    dataDirs: ['input', 'output'],
  };
  writeFileSync(src.lastSync, '{"the last sync": "its bytes"}');
  await pastChangeOf(src.lastSync, src.statCache);
  const before = walkInputs(src);
  const listed = { dirs: [] as ListedDir[], complete: true };
  const outside = new OutsideDataCounter();
  const same = await treeIsLastSync({
    root,
    dataDirs: src.dataDirs as string[],
    statCacheFile,
    last: columns,
    listed,
    outside,
  });
  expect(same).toBe(true);
  expect(listed.complete).toBe(true);
  const facts: UnchangedTree = {
    size: 30,
    sha256: 'f'.repeat(64),
    snapshotId: 's1',
    createdAt: '2025-06-01T10:00:00-07:00',
    outside: outside.result(),
  };
  return { root, src, before, listed, facts };
}

/** Replace a file by a copy of itself (what a rewrite by rename does: a new inode, the same bytes). */
function rewrite(file: string): void {
  writeFileSync(`${file}.tmp`, readFileSync(file));
  renameSync(`${file}.tmp`, file);
}

describe('walk record', () => {
  it('answers with the facts it was written with while the tree and both files are as they were', async () => {
    const { root, src, before, listed, facts } = await proved();
    expect(facts.outside).toEqual({ files: 1, directories: [{ path: 'src', files: 1 }] });
    expect(await writeWalkRecord(src, before, facts, listed.dirs, NOW)).toBe(true);
    expect(await unchangedByRecord(src, NOW)).toEqual(facts);
    // a change outside the data (not a last-sync entry) of a file's content is not the record's business
    appendFileSync(path.join(root, 'src/notes.txt'), ' more');
    expect(await unchangedByRecord(src, NOW)).toEqual(facts);
  });

  it('is not written for files changed within the racy window, nor when they changed during the walk', async () => {
    const { src, before, listed, facts } = await proved();
    expect(await writeWalkRecord(src, before, facts, listed.dirs, YOUNG)).toBe(false); // just written: not settled
    expect(existsSync(src.record)).toBe(false);
    rewrite(src.lastSync); // a sync landed while the walk ran
    await pastChangeOf(src.lastSync);
    expect(await writeWalkRecord(src, before, facts, listed.dirs, NOW)).toBe(false);
    expect(existsSync(src.record)).toBe(false);
  });

  const stale: [string, (p: Awaited<ReturnType<typeof proved>>) => WalkRecordSource | void][] = [
    ['the last sync was rewritten (even with the same bytes)', ({ src }) => rewrite(src.lastSync)],
    ['the stat cache was rewritten', ({ src }) => rewrite(src.statCache)],
    ['the last sync was emptied', ({ src }) => writeFileSync(src.lastSync, '')],
    ['a data file changed', ({ root }) => appendFileSync(path.join(root, 'input/a.csv'), 'x')],
    ['a data file was added', ({ root }) => writeFileSync(path.join(root, 'output/new'), 'n')],
    ['the data dirs are others', ({ src }) => ({ ...src, dataDirs: ['input'] })],
    ['an ignore rule was added', ({ src }) => ({ ...src, ignore: { suffixes: ['.csv'] } })],
    [
      'a byte of the record is damaged',
      ({ src }) => {
        const b = readFileSync(src.record);
        b[b.length - 40]! ^= 1;
        writeFileSync(src.record, b);
      },
    ],
    ['the record is truncated', ({ src }) => writeFileSync(src.record, readFileSync(src.record).subarray(0, 30))],
    ['the record is another file', ({ src }) => writeFileSync(src.record, randomBytes(4096))],
  ];
  for (const [what, change] of stale)
    it(`does not answer when ${what}`, async () => {
      const p = await proved();
      expect(await writeWalkRecord(p.src, p.before, p.facts, p.listed.dirs, NOW)).toBe(true);
      const other = change(p);
      expect(await unchangedByRecord(other ?? p.src, NOW)).toBeNull();
    });

  it('does not answer for a record whose files had not settled when it was made (a damaged writer)', async () => {
    const { src, before, listed, facts } = await proved();
    expect(await writeWalkRecord(src, before, facts, listed.dirs, NOW)).toBe(true);
    expect(await unchangedByRecord(src)).toBeNull(); // the default window: the files are seconds old
  });
});
