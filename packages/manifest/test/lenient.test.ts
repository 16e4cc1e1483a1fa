// Lenient reading: an entry another tool recorded that this dsg cannot use
// (the original writes them without complaint) never makes a manifest
// unreadable. It is kept byte for byte — so entries_hash and snapshot_hash
// still verify, in either tool, after we rewrite the manifest — and marked
// unusable for the sync engine to hold back. Broken STRUCTURE is still refused.
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { INTEROP_FIXTURES } from '@dsg/testenv';
import { ValidationError } from '@dsg/contracts';
import {
  buildSnapshot,
  compactEntry,
  decompressArchive,
  entriesHash,
  entryProblem,
  parseManifest,
  parseSyncMessages,
  scanProject,
  serializeManifest,
  serializeSyncMessages,
  unusableReason,
  validateChain,
  type FileEntry,
  type ManifestEntry,
} from '../src/index.js';

const FIXTURES = INTEROP_FIXTURES;
if (!existsSync(FIXTURES) && process.env['DSG_REQUIRE_REAL'] === '1')
  throw new Error(`the interop fixtures are missing at ${FIXTURES} (set DSG_INTEROP_FIXTURES)`);
const ODD = path.join(FIXTURES, 'odd-entries', 'project', '.dsg');

const tmpDirs: string[] = [];
afterAll(async () => {
  for (const d of tmpDirs) await rm(d, { recursive: true, force: true });
});

const user = 'ana@example.org';
const good = (p: string, hash = '3989cc18ac165964'): FileEntry => ({
  type: 'file',
  path: p,
  user,
  filesize: 5,
  mtime: '2024-01-15T09:00:00-08:00',
  hash,
});

/** A manifest file as the original writes one (orjson, 2-space indent), in the given entry order, with a matching entries_hash. */
function originalText(entries: ManifestEntry[], metadata: Record<string, unknown> = {}): string {
  return JSON.stringify(
    {
      entries: Object.fromEntries(entries.map((e) => [e.path, e])),
      metadata: {
        manifest_version: '0.4.4',
        snapshot_id: 's1',
        created_at: '2026-12-01T05:34:56-08:00',
        entry_count: entries.length,
        entries_hash: entriesHash(entries),
        created_by: user,
        snapshot_message: 'Initial snapshot',
        snapshot_previous: null,
        snapshot_hash: '0000000000000000',
        snapshot_notes: 'init',
        project_config: null,
        ...metadata,
      },
    },
    null,
    2,
  );
}

/** Each odd entry the original records, alone between good ones: read, kept byte for byte, marked, the others untouched. */
const CASES: [string, ManifestEntry, RegExp][] = [
  ['a backslash in a name', good('input/a\\b.csv', '8e6c24aee9db9e33'), /^refused name: contains a backslash/],
  [
    'a link that escapes by one level',
    { type: 'link', path: 'input/l', user, reference: '../../outside.txt' },
    /^refused link target "\.\.\/\.\.\/outside\.txt": symlink target escapes the project/,
  ],
  [
    'an mtime before 1883 with a local-mean-time offset',
    { ...good('input/old.csv', 'ecec4b7e59dfe945'), filesize: 4, mtime: '1879-12-31T00:00:00-07:52:58' },
    /^mtime "1879-12-31T00:00:00-07:52:58" is not an ISO 8601 timestamp/,
  ],
  [
    'an mtime without an offset',
    { ...good('input/naive.csv'), mtime: '2024-01-15T09:00:00' },
    /^mtime "2024-01-15T09:00:00" is not an ISO 8601 timestamp/,
  ],
  [
    'a hash that is not 16 hex digits',
    good('input/h.csv', 'not-a-hash'),
    /^hash "not-a-hash" is not 16 lowercase hex digits/,
  ],
  ['a NUL in a name', good('input/a\u0000b.csv'), /^refused name: illegal character U\+0000/],
  ['an empty path', good(''), /^refused name: empty path/],
  ['a path climbing out', good('../evil.csv'), /^refused name: path starts with \.\/ or \.\.\//],
  ['an absolute path', good('/tmp/evil.csv'), /^refused name: absolute path/],
  ['a path into .dsg', good('input/.dsg/x'), /^$/], // a valid name: held back by the scope (hidden), not by the reader
];

describe('each odd entry the original writes, between good ones', () => {
  it.each(CASES)('%s: read, kept byte for byte, marked unusable; the others stay usable', (_label, odd, why) => {
    const entries = [good('output/b.csv'), odd, good('input/a.csv')];
    const text = originalText(entries);
    const m = parseManifest(text, 'last-sync.json');
    expect([...m.entries.keys()]).toEqual(entries.map((e) => e.path)); // the file's order
    expect(serializeManifest(m)).toBe(text);
    expect(entriesHash(m.entries.values())).toBe(m.metadata?.entries_hash);
    const e = m.entries.get(odd.path)!;
    expect(compactEntry(e)).toBe(compactEntry(odd));
    if (why.source === '^$') expect(unusableReason(e)).toBeNull();
    else expect(unusableReason(e)).toMatch(why);
    expect(unusableReason(m.entries.get('output/b.csv')!)).toBeNull();
    expect(unusableReason(m.entries.get('input/a.csv')!)).toBeNull();
  });

  it('created_by null in the metadata (the original\'s Optional) reads as "" and is written back as null', () => {
    const text = originalText([good('input/a.csv')], { created_by: null });
    const m = parseManifest(text);
    expect(m.metadata?.created_by).toBe('');
    expect(serializeManifest(m)).toBe(text);
    const sm = JSON.stringify({ metadata_version: '0.4.4', snapshots: { s1: JSON.parse(text).metadata } }, null, 2);
    const messages = parseSyncMessages(sm);
    expect(messages.snapshots['s1']?.created_by).toBe('');
    expect(serializeSyncMessages(messages)).toBe(sm);
    // a block this dsg fills in writes its user, not null
    messages.snapshots['s1']!.created_by = user;
    expect(serializeSyncMessages(messages)).toContain(`"created_by": "${user}"`);
  });

  it("entryProblem is the reader's rule: null for everything this dsg writes", () => {
    expect(entryProblem(good('input/a.csv'))).toBeNull();
    expect(entryProblem({ type: 'link', path: 'output/l', user, reference: '../input/a.csv' })).toBeNull();
    expect(entryProblem({ ...good('input/a.csv'), hash: '' })).toBeNull();
    for (const [, odd, why] of CASES) if (why.source !== '^$') expect(entryProblem(odd)).toMatch(why);
  });
});

describe('a broken structure is still refused', () => {
  const text = originalText([good('input/a.csv'), good('input/a\\b.csv')]);
  const edit = (
    f: (o: { entries: Record<string, Record<string, unknown>>; metadata: Record<string, unknown> }) => void,
  ): string => {
    const o = JSON.parse(text) as Parameters<typeof f>[0];
    f(o);
    return JSON.stringify(o, null, 2);
  };
  it.each<[string, string, string | RegExp]>([
    ['not JSON', '{"entries": {', '(root)'],
    ['not an object', '[]', '(root)'],
    [
      'entries not an object',
      edit((o) => (o.entries = [] as unknown as Record<string, Record<string, unknown>>)),
      'entries',
    ],
    [
      'entries a string',
      edit((o) => (o.entries = 'x' as unknown as Record<string, Record<string, unknown>>)),
      'entries',
    ],
    [
      'an entry not an object',
      edit((o) => (o.entries['input/a.csv'] = 'x' as unknown as Record<string, unknown>)),
      /^entries\["input\/a.csv"\]/,
    ],
    [
      'a key that differs from its path',
      edit((o) => (o.entries['input/a.csv']!['path'] = 'input/b.csv')),
      'entries["input/a.csv"].path',
    ],
    [
      'an odd key that differs from its path',
      edit((o) => (o.entries['input/a\\b.csv']!['path'] = 'input/a/b.csv')),
      'entries["input/a\\\\b.csv"].path',
    ],
    [
      'a wrong type',
      edit((o) => (o.entries['input/a\\b.csv']!['filesize'] = '5')),
      'entries["input/a\\\\b.csv"].filesize',
    ],
    ['an unknown entry type', edit((o) => (o.entries['input/a.csv']!['type'] = 'dir')), /^entries\["input\/a.csv"\]/],
    ['an entry_count that does not match', edit((o) => (o.metadata['entry_count'] = 3)), 'metadata.entry_count'],
    ['created_by of a wrong type', edit((o) => (o.metadata['created_by'] = 7)), 'metadata.created_by'],
  ])('%s', (_label, bad, field) => {
    let err: unknown;
    try {
      parseManifest(bad, 'last-sync.json');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ValidationError);
    const d = (err as ValidationError).details;
    expect(d.file).toBe('last-sync.json');
    if (typeof field === 'string') expect(d.field).toBe(field);
    else expect(d.field).toMatch(field);
  });

  it('an odd entry edited after the fact: the entries_hash no longer verifies (validateChain names it)', () => {
    const m = parseManifest(edit((o) => (o.entries['input/a\\b.csv']!['hash'] = '0000000000000000')));
    expect(entriesHash(m.entries.values())).not.toBe(m.metadata?.entries_hash);
    expect(validateChain([m])).toMatchObject({ ok: false, reason: /entries_hash mismatch/ });
  });
});

describe('buildSnapshot carries a marked entry as read, and only a marked one', () => {
  const odd = [
    ...parseManifest(
      originalText([good('input/a\\b.csv'), { type: 'link', path: 'input/l', user, reference: '../../outside.txt' }]),
    ).entries.values(),
  ];
  const o = {
    snapshotId: 's2',
    previous: null,
    message: 'next',
    user: 'bo@example.org',
    createdAt: new Date(0),
    projectConfig: null,
  };

  it('the entries read leniently go into the next snapshot field for field', () => {
    const next = buildSnapshot([good('input/a.csv'), ...odd], o);
    const back = parseManifest(serializeManifest(next));
    for (const e of odd) {
      expect(compactEntry(back.entries.get(e.path)!)).toBe(compactEntry(e));
      expect(unusableReason(back.entries.get(e.path)!)).toBe(unusableReason(e)); // marked again when read again
    }
    expect(validateChain([back])).toEqual({ ok: true });
  });

  it('a copy is not marked: this dsg never makes such an entry itself', () => {
    expect(() => buildSnapshot([{ ...odd[0]! }], o)).toThrow(/refused entry "input\/a\\\\b.csv": contains a backslash/);
    expect(() => buildSnapshot([{ ...odd[1]! }], o)).toThrow(/escapes the project/);
  });
});

describe.skipIf(!existsSync(ODD))("the original's odd-entries fixture", () => {
  const read = (f: string): string => readFileSync(path.join(ODD, f), 'utf8');

  it('last-sync.json (s2): read, rewritten byte for byte, entries_hash verifies; the three odd entries are marked, the two good ones not', () => {
    const text = read('last-sync.json');
    const m = parseManifest(text, 'last-sync.json');
    expect(serializeManifest(m)).toBe(text);
    expect([...m.entries.keys()]).toEqual([
      'output/b.csv',
      'input/old.csv',
      'input/l',
      'input/a\\b.csv',
      'input/a.csv',
    ]);
    expect(entriesHash(m.entries.values())).toBe('f0907b0b96b105dd');
    expect(m.metadata).toMatchObject({ entries_hash: 'f0907b0b96b105dd', snapshot_hash: 'b48c19eae7228e2c' });
    const reasons = Object.fromEntries([...m.entries].map(([p, e]) => [p, unusableReason(e)]));
    expect(reasons).toEqual({
      'output/b.csv': null,
      'input/old.csv': expect.stringMatching(/^mtime "1879-12-31T00:00:00-07:52:58"/) as unknown,
      'input/l': expect.stringMatching(/^refused link target "\.\.\/\.\.\/outside\.txt"/) as unknown,
      'input/a\\b.csv': expect.stringMatching(/^refused name: contains a backslash/) as unknown,
      'input/a.csv': null,
    });
  });

  it('its archive (s1) and sync-messages.json: read and rewritten byte for byte; the chain s1 → s2 validates', () => {
    const s1Text = decompressArchive(readFileSync(path.join(ODD, 'archive', 's1-sync.json.lz4')), 's1-sync.json.lz4');
    const s1 = parseManifest(s1Text, 's1-sync.json.lz4');
    expect(serializeManifest(s1)).toBe(s1Text);
    expect(s1.metadata).toMatchObject({
      snapshot_id: 's1',
      entries_hash: 'f0907b0b96b105dd',
      snapshot_hash: '6afd43d62e5b2015',
    });
    const s2 = parseManifest(read('last-sync.json'));
    expect(validateChain([s1, s2])).toEqual({ ok: true });
    const sm = read('sync-messages.json');
    expect(serializeSyncMessages(parseSyncMessages(sm))).toBe(sm);
  });

  it('the next snapshot (a.csv changed) carries the odd entries with exactly the same JSON, and the chain s1 → s2 → s3 validates', () => {
    const text = read('last-sync.json');
    const s1 = parseManifest(decompressArchive(readFileSync(path.join(ODD, 'archive', 's1-sync.json.lz4'))));
    const s2 = parseManifest(text);
    const merged = [...s2.entries.values()].map((e) =>
      e.path === 'input/a.csv' ? { ...good('input/a.csv', '0123456789abcdef'), user: 'bo@example.org' } : e,
    );
    const s3Text = serializeManifest(
      buildSnapshot(merged, {
        snapshotId: 's3',
        previous: s2.metadata,
        message: 'Sync operation',
        user: 'bo@example.org',
        createdAt: new Date(0),
        projectConfig: null,
      }),
    );
    const s3 = parseManifest(s3Text);
    const before = (JSON.parse(text) as { entries: Record<string, unknown> }).entries;
    const after = (JSON.parse(s3Text) as { entries: Record<string, unknown> }).entries;
    for (const p of ['input/old.csv', 'input/l', 'input/a\\b.csv', 'output/b.csv'])
      expect(after[p], p).toEqual(before[p]);
    expect(s3Text).toContain('"mtime": "1879-12-31T00:00:00-07:52:58"');
    expect(s3Text).toContain('"input/a\\\\b.csv": {');
    expect(entriesHash(s3.entries.values())).toBe(s3.metadata?.entries_hash);
    expect(validateChain([s1, s2, s3])).toEqual({ ok: true });
  });
});

describe("the scanner leaves alone the local copies of the last sync's unusable entries", () => {
  it('no warning, no entry for them; everything else as before (a new refused name is still refused)', async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), 'dsg-lenient-'));
    tmpDirs.push(root);
    const put = async (rel: string, content: string): Promise<void> => {
      await mkdir(path.dirname(path.join(root, rel)), { recursive: true });
      await writeFile(path.join(root, rel), content);
    };
    await put('input/a.csv', 'id\n1\n');
    await put('input/a\\b.csv', 'back\n');
    await put('input/new\\x.csv', 'new\n'); // not in the last sync: refused as ever
    await put('input/old.csv', 'old\n');
    await put('input/d\\e/held.csv', 'held\n'); // beneath a refused directory name, held
    await put('input/d\\e/new.csv', 'new\n'); // beneath it, not held
    await symlink('../../outside.txt', path.join(root, 'input', 'l'));
    const previous = parseManifest(
      originalText([
        good('input/a.csv'),
        good('input/a\\b.csv'),
        good('input/d\\e/held.csv'),
        { type: 'link', path: 'input/l', user, reference: '../../outside.txt' },
        { ...good('input/old.csv'), mtime: '1879-12-31T00:00:00-07:52:58' },
      ]),
    );
    const scan = await scanProject({ root, dataDirs: ['input', 'output'], user, previous });
    expect(scan.warnings.map((w) => w.path)).toEqual(['input/d\\e/new.csv', 'input/new\\x.csv']);
    expect([...scan.manifest.entries.keys()]).toEqual(['input/a.csv', 'input/old.csv']); // old.csv's name is fine: scanned (the sync holds R's entry back)
    const fresh = await scanProject({ root, dataDirs: ['input', 'output'], user });
    expect(fresh.warnings.map((w) => w.path)).toEqual(['input/a\\b.csv', 'input/d\\e', 'input/l', 'input/new\\x.csv']);
  });
});
