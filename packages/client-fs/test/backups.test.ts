import { mkdir, readdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { newTransactionId } from '@dsg/contracts';
import { listBackups, removeBackups } from '../src/index.js';
import { exists, tempProject } from './helpers.js';

/** A project with three backup sets (old, mid, young: 4, 2 and 1 bytes) and one set whose transaction has a journal. */
async function withSets(): Promise<{ root: string; old: string; mid: string; young: string; journaled: string }> {
  const root = await tempProject({ 'input/a.txt': 'A', 'outside.txt': 'O' });
  const old = newTransactionId(new Date('2026-01-01T00:00:00Z'));
  const mid = newTransactionId(new Date('2026-06-01T00:00:00Z'));
  const young = newTransactionId(new Date('2026-11-24T00:00:00Z'));
  const journaled = newTransactionId(new Date('2026-01-02T00:00:00Z'));
  const put = async (tx: string, rel: string, content: string): Promise<void> => {
    await mkdir(path.dirname(path.join(root, '.dsg/backup', tx, rel)), { recursive: true });
    await writeFile(path.join(root, '.dsg/backup', tx, rel), content);
  };
  await put(old, 'input/a.txt', 'AAA');
  await put(old, 'input/sub/b.txt', 'B');
  await put(mid, 'input/a.txt', 'AA');
  await put(young, 'input/a.txt', 'A');
  await put(journaled, 'input/j.txt', 'JJJJJJJJ');
  await mkdir(path.join(root, '.dsg/journal'), { recursive: true });
  await writeFile(path.join(root, '.dsg/journal', `${journaled}.json`), '{}');
  return { root, old, mid, young, journaled };
}

const now = new Date('2026-11-25T00:00:00Z');

describe('listBackups', () => {
  it('lists every kept file with its original path, time and size, oldest set first', async () => {
    const { root, old, mid, young, journaled } = await withSets();
    const sets = await listBackups(root);
    expect(sets.map((s) => s.transactionId)).toEqual([old, journaled, mid, young]);
    expect(sets[0]).toMatchObject({ time: '2026-01-01T00:00:00.000Z', bytes: 4, pending: false });
    expect(sets[0]!.files).toEqual([
      {
        path: `.dsg/backup/${old}/input/a.txt`,
        original: 'input/a.txt',
        transactionId: old,
        time: sets[0]!.time,
        size: 3,
      },
      {
        path: `.dsg/backup/${old}/input/sub/b.txt`,
        original: 'input/sub/b.txt',
        transactionId: old,
        time: sets[0]!.time,
        size: 1,
      },
    ]);
    expect(sets[1]!.pending).toBe(true);
    expect((await listBackups(root, young)).map((s) => s.bytes)).toEqual([1]);
    expect(await listBackups(root, '../../x')).toEqual([]);
  });

  it('a project without backups has none; a file (not a directory) under .dsg/backup is not listed', async () => {
    const root = await tempProject({ 'input/a.txt': 'A' });
    expect(await listBackups(root)).toEqual([]);
    await mkdir(path.join(root, '.dsg/backup'), { recursive: true });
    await writeFile(path.join(root, '.dsg/backup/stray'), 'x');
    expect(await listBackups(root)).toEqual([]);
  });
});

describe('removeBackups', () => {
  it('older than an age: removes those sets only, never one with a journal; dry run changes nothing', async () => {
    const { root, old, mid, young, journaled } = await withSets();
    const dry = await removeBackups(root, { olderThanMs: 30 * 86_400_000, now, dryRun: true });
    expect(dry.sets.map((s) => s.transactionId)).toEqual([old, mid]);
    expect(dry.bytes).toBe(6);
    expect(await exists(path.join(root, '.dsg/backup', old))).toBe(true);
    const r = await removeBackups(root, { olderThanMs: 30 * 86_400_000, now });
    expect(r.bytes).toBe(6);
    expect((await readdir(path.join(root, '.dsg/backup'))).sort()).toEqual([journaled, young].sort());
  });

  it('a size cap removes the oldest sets until the rest fits (sets with a journal count, and stay)', async () => {
    const { root, old, mid, young, journaled } = await withSets();
    // 4 + 8 (journaled) + 2 + 1 = 15 bytes; a cap of 10 removes old (4) then mid (2): 9 left
    const r = await removeBackups(root, { maxBytes: 10, now });
    expect(r.sets.map((s) => s.transactionId)).toEqual([old, mid]);
    expect((await readdir(path.join(root, '.dsg/backup'))).sort()).toEqual([journaled, young].sort());
    // under the cap already: nothing
    expect((await removeBackups(root, { maxBytes: 100, now })).sets).toEqual([]);
  });

  it('no age and no cap: every set but one with a journal; nothing outside .dsg/backup is touched, a symlink in it is removed as a link', async () => {
    const { root, journaled } = await withSets();
    const young = newTransactionId(new Date('2026-11-24T01:00:00Z'));
    await mkdir(path.join(root, '.dsg/backup', young, 'input'), { recursive: true });
    await symlink(path.join(root, 'input'), path.join(root, '.dsg/backup', young, 'input', 'link'));
    await removeBackups(root, { now });
    expect(await readdir(path.join(root, '.dsg/backup'))).toEqual([journaled]);
    expect(await exists(path.join(root, 'input/a.txt'))).toBe(true);
    expect(await exists(path.join(root, 'outside.txt'))).toBe(true);
  });
});
