// Entries another tool recorded that this dsg cannot use (the original
// writes them: a backslash in a name, a link escaping by one level, an mtime
// with a local-mean-time offset or none, created_by null) are read leniently
// and held back by the one write gate, partitionByScope: never downloaded,
// never deleted, carried into the next snapshot field for field.
import { chmod, readFile, realpath, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  entriesHash,
  Manifest,
  parseManifest,
  projectScope,
  snapshotHash,
  unusableReason,
  type ManifestEntry,
} from '@dsg/manifest';
import { partitionByScope } from '../../src/held-back.js';
import { World, put, read, tree, type Client } from './world.js';

const user = 'ana@example.org';
/** What the original recorded beside the good entries (as its JSON holds them). */
const ODD: ManifestEntry[] = [
  {
    type: 'file',
    path: 'input/a\\b.csv',
    user,
    filesize: 5,
    mtime: '2024-01-15T09:00:00-08:00',
    hash: '8e6c24aee9db9e33',
  },
  { type: 'link', path: 'input/l', user, reference: '../../outside.txt' },
  {
    type: 'file',
    path: 'input/old.csv',
    user,
    filesize: 4,
    mtime: '1879-12-31T00:00:00-07:52:58',
    hash: 'ecec4b7e59dfe945',
  },
  { type: 'file', path: 'input/naive.csv', user, filesize: 4, mtime: '2024-01-15T09:00:00', hash: 'ecec4b7e59dfe945' },
];
const ODD_PATHS = ODD.map((e) => e.path).sort();

type Json = { entries: Record<string, Record<string, unknown>>; metadata: Record<string, unknown> };

let w: World;
let a: Client;
beforeEach(async () => {
  w = await World.create();
  a = await w.client('alice', { 'input/a.csv': 'v1', 'output/b.csv': 'b' });
  await w.sync(a, 'init');
});
afterEach(async () => {
  await w.dispose();
});

/**
 * The repository's live manifest as another tool would have written it: the
 * odd entries between the good ones, created_by null, entries_hash and
 * snapshot_hash recomputed (a consistent manifest, not a forgery).
 */
async function addOddEntries(): Promise<string> {
  const file = path.join(await realpath(w.currentDir), '.dsg', 'last-sync.json');
  await chmod(path.dirname(path.dirname(file)), 0o755).catch(() => undefined);
  await chmod(path.dirname(file), 0o755).catch(() => undefined);
  const m = JSON.parse(await readFile(file, 'utf8')) as Json;
  const [first, ...rest] = Object.entries(m.entries);
  m.entries = Object.fromEntries([first!, ...ODD.map((e) => [e.path, e] as const), ...rest]);
  const entries = Object.values(m.entries) as unknown as ManifestEntry[];
  const eh = entriesHash(entries);
  Object.assign(m.metadata, {
    entry_count: entries.length,
    entries_hash: eh,
    created_by: null,
    snapshot_hash: snapshotHash({
      entriesHash: eh,
      message: String(m.metadata['snapshot_message']),
      projectConfig: m.metadata['project_config'] as Record<string, unknown> | null,
      previousHash: null,
    }),
  });
  const text = JSON.stringify(m, null, 2);
  await writeFile(`${file}.new`, text);
  await rename(`${file}.new`, file);
  return text;
}

const entriesOf = async (): Promise<Json['entries']> =>
  (JSON.parse(await readFile(path.join(w.currentDir, '.dsg', 'last-sync.json'), 'utf8')) as Json).entries;

describe('odd entries of another tool: held back, carried unchanged', () => {
  it('partitionByScope holds back every case/NFC twin of R (two or three to a name) and refuses a local twin', () => {
    const f = (p: string): ManifestEntry => ({
      type: 'file',
      path: p,
      user,
      filesize: 1,
      mtime: '2024-01-15T09:00:00-08:00',
      hash: '8e6c24aee9db9e33',
    });
    const remote = new Manifest(
      ['input/A.csv', 'input/a.csv', 'input/caf\u00e9', 'input/cafe\u0301', 'input/CAFÉ', 'input/solo', 'input/x'].map(
        f,
      ),
    );
    const local = new Manifest(['input/solo', 'input/X', 'input/x', 'input/new'].map(f));
    const part = partitionByScope(local, Manifest.empty(), remote, projectScope(['input']));
    const held = Object.fromEntries(part.heldBack.map((h) => [h.path, h.reason]));
    expect(Object.keys(held).sort()).toEqual(
      ['input/A.csv', 'input/CAFÉ', 'input/a.csv', 'input/caf\u00e9', 'input/cafe\u0301'].sort(),
    );
    expect(held['input/a.csv']).toBe(
      'differs only by case or Unicode normalization from "input/A.csv" in the repository (one file on macOS and Windows)',
    );
    expect(held['input/CAFÉ']).toMatch(/from "input\/caf\u00e9", "input\/cafe\u0301" in the repository/);
    // a local path whose twin is in R (and that R does not hold itself) is refused; R's own path is not
    expect(part.localTwins).toEqual([
      {
        path: 'input/X',
        reason:
          'differs only by case or Unicode normalization from "input/x" in the repository (one file on macOS and Windows)',
      },
    ]);
    expect([...part.remote.entries.keys()]).toEqual(['input/solo', 'input/x']);
  });

  it("partitionByScope holds every marked entry back (and only those) and carries R's very entry objects", async () => {
    const remote = parseManifest(await addOddEntries(), 'repository');
    const local = new Manifest([...remote.entries.values()].filter((e) => unusableReason(e) === null));
    const part = partitionByScope(local, remote, remote, projectScope(['input', 'output']));
    expect(part.heldBack.map((h) => h.path)).toEqual(ODD_PATHS);
    expect(Object.fromEntries(part.heldBack.map((h) => [h.path, h.reason]))).toMatchObject({
      'input/a\\b.csv': expect.stringMatching(/backslash/) as unknown,
      'input/l': expect.stringMatching(/escapes the project/) as unknown,
      'input/old.csv': expect.stringMatching(/^mtime "1879-12-31T00:00:00-07:52:58"/) as unknown,
      'input/naive.csv': expect.stringMatching(/^mtime "2024-01-15T09:00:00"/) as unknown,
    });
    for (const e of part.carried) expect(e).toBe(remote.entries.get(e.path)); // the same objects: nothing re-made
    expect([...part.remote.entries.keys()].sort()).toEqual(['input/a.csv', 'output/b.csv']);
    expect([...part.cache.entries.keys()].sort()).toEqual(['input/a.csv', 'output/b.csv']);
  });

  it('a sync reports them held back, writes none of them, and its snapshot carries them field for field; a clone and its sync do the same', async () => {
    await addOddEntries();
    const before = await entriesOf();

    const plan = await w.plan(a);
    expect(plan.heldBack.map((h) => h.path)).toEqual(ODD_PATHS);
    expect(plan.invalid).toEqual([]);
    expect(plan.paths.map((p) => p.path)).not.toContain('input/old.csv');

    await put(a, 'input/a.csv', 'v2');
    const r = await w.sync(a, 'a changed');
    expect(r).toMatchObject({
      kind: 'snapshot',
      snapshotId: 's2',
      uploaded: ['input/a.csv'],
      downloaded: [],
      deletedLocal: [],
      deletedRemote: [],
    });
    expect(r.plan.heldBack.map((h) => h.path)).toEqual(ODD_PATHS);
    const s2 = await entriesOf();
    for (const p of ODD_PATHS) expect(s2[p], p).toEqual(before[p]);
    const head = (await w.remoteManifest())!;
    expect(entriesHash(head.entries.values())).toBe(head.metadata?.entries_hash);
    for (const p of ODD_PATHS) expect(unusableReason(head.entries.get(p)!), p).not.toBeNull();
    for (const p of ODD_PATHS) expect(await read(a, p), p).toBeNull();

    const b = await w.client('bob');
    const c = await w.clone(b);
    expect(c.plan.heldBack.map((h) => h.path)).toEqual(ODD_PATHS);
    expect(await tree(b.root)).toEqual({ 'input/a.csv': 'v2', 'output/b.csv': 'b' });
    await put(b, 'output/b.csv', 'b2');
    expect(await w.sync(b, 'b changed')).toMatchObject({ kind: 'snapshot', snapshotId: 's3' });
    const s3 = await entriesOf();
    for (const p of ODD_PATHS) expect(s3[p], p).toEqual(before[p]);
    expect(await tree(b.root)).toEqual({ 'input/a.csv': 'v2', 'output/b.csv': 'b2' });
  });
});
