import { describe, expect, it } from 'vitest';
import { ValidationError } from '@dsg/contracts';
import type { Manifest } from '../src/index.js';
import {
  buildSnapshot,
  compactEntry,
  createXxh3Hasher,
  entriesHash,
  hashBytes,
  snapshotHash,
  validateChain,
  type ManifestEntry,
} from '../src/index.js';

const user = 'ana@example.org';
const mtime = '2025-06-01T10:11:12-07:00';
const A = 'id,name\n1,Ana\n2,Bo\n';
const R = 'x\n'.repeat(1000);

export function workedEntries(): ManifestEntry[] {
  return [
    { type: 'file', path: 'input/a.csv', user, filesize: 19, mtime, hash: hashBytes(A) },
    { type: 'file', path: 'input/b.txt', user, filesize: 0, mtime, hash: hashBytes('') },
    { type: 'link', path: 'output/latest.csv', user, reference: '../input/a.csv' },
    { type: 'file', path: 'output/résumé.csv', user, filesize: 2000, mtime, hash: hashBytes(R) },
  ];
}
const config = { name: 'demo', data_dirs: ['input', 'output'] };

function chain(): Manifest[] {
  const s1 = buildSnapshot(workedEntries(), {
    snapshotId: 's1',
    previous: null,
    message: 'first import',
    user,
    createdAt: new Date('2025-06-01T17:12:00Z'),
    projectConfig: null,
  });
  const s2 = buildSnapshot(workedEntries(), {
    snapshotId: 's2',
    previous: s1.metadata,
    message: 'second',
    user,
    createdAt: new Date('2025-06-01T17:15:00Z'),
    projectConfig: config,
  });
  const e3 = workedEntries().slice(1);
  const s3 = buildSnapshot(e3, {
    snapshotId: 's3',
    previous: s2.metadata,
    message: 'drop a',
    user,
    createdAt: new Date('2025-06-02T17:15:00Z'),
    projectConfig: config,
  });
  return [s1, s2, s3];
}

describe('hashes (the worked example of docs/ARCHITECTURE.md §2)', () => {
  it('file hashes: xxh3-64, 16 zero-padded hex digits', () => {
    expect(hashBytes(A)).toBe('1d812414f9aee671');
    expect(hashBytes('')).toBe('2d06800538d394c2');
    expect(hashBytes(R)).toBe('98112583ce11e659');
    expect(hashBytes(Buffer.from(A))).toBe('1d812414f9aee671');
  });
  it('the streaming hasher equals the one-shot hash whatever the chunking', () => {
    const h = createXxh3Hasher();
    const bytes = Buffer.from(R);
    for (let i = 0; i < bytes.length; i += 7) h.update(bytes.subarray(i, i + 7));
    expect(h.digest()).toBe('98112583ce11e659');
    // a digest with leading zero nibbles is still 16 digits
    for (let i = 0; i < 2000; i++) expect(hashBytes(String(i))).toMatch(/^[0-9a-f]{16}$/);
  });
  it('entries_hash and snapshot_hash', () => {
    expect(entriesHash(workedEntries())).toBe('d73f84299f6a9f7d');
    const s1 = snapshotHash({
      entriesHash: 'd73f84299f6a9f7d',
      message: 'first import',
      projectConfig: null,
      previousHash: null,
    });
    expect(s1).toBe('1b73b31cb6cdaee4');
    expect(
      snapshotHash({ entriesHash: 'd73f84299f6a9f7d', message: 'first import', projectConfig: {}, previousHash: null }),
    ).toBe(s1);
    expect(
      snapshotHash({ entriesHash: 'd73f84299f6a9f7d', message: 'second', projectConfig: config, previousHash: s1 }),
    ).toBe('beddf1425833c764');
    // key order of the config does not matter: it is hashed with sorted keys
    expect(
      snapshotHash({
        entriesHash: 'd73f84299f6a9f7d',
        message: 'second',
        projectConfig: { data_dirs: ['input', 'output'], name: 'demo' },
        previousHash: s1,
      }),
    ).toBe('beddf1425833c764');
  });
  it('entries_hash of a large manifest equals one update per entry (batching is invisible)', () => {
    const many: ManifestEntry[] = Array.from({ length: 5000 }, (_, i) => ({
      type: 'file',
      path: `input/é${i}`,
      user,
      filesize: i,
      mtime,
      hash: hashBytes(String(i)),
    }));
    const ref = createXxh3Hasher();
    for (const e of many) ref.update(Buffer.from(compactEntry(e)));
    expect(entriesHash(many)).toBe(ref.digest());
  });

  it('buildSnapshot sorts entries by path and chains metadata', () => {
    const [s1, s2] = chain();
    const shuffled = buildSnapshot([...workedEntries()].reverse(), {
      snapshotId: 's1',
      previous: null,
      message: 'first import',
      user,
      createdAt: new Date('2025-06-01T17:12:00Z'),
      projectConfig: null,
    });
    expect([...shuffled.entries.keys()]).toEqual([...(s1 as Manifest).entries.keys()]);
    expect(s1?.metadata).toMatchObject({
      snapshot_id: 's1',
      entries_hash: 'd73f84299f6a9f7d',
      snapshot_hash: '1b73b31cb6cdaee4',
      snapshot_previous: null,
      created_at: '2025-06-01T10:12:00-07:00',
      entry_count: 4,
      created_by: user,
    });
    expect(s2?.metadata).toMatchObject({
      snapshot_previous: 's1',
      snapshot_hash: 'beddf1425833c764',
      project_config: config,
    });
  });
});

describe('buildSnapshot refuses', () => {
  const o = { snapshotId: 's1', previous: null, message: 'm', user, createdAt: new Date(0), projectConfig: null };
  it('duplicate paths', () => {
    const e = workedEntries();
    expect(() => buildSnapshot([...e, { ...(e[0] as ManifestEntry) }], o)).toThrow(/duplicate entry "input\/a.csv"/);
  });
  it('refused names and escaping links', () => {
    expect(() => buildSnapshot([{ type: 'file', path: 'input/../x', user, filesize: 0, mtime, hash: '' }], o)).toThrow(
      ValidationError,
    );
    expect(() => buildSnapshot([{ type: 'link', path: 'input/l', user, reference: '../../x' }], o)).toThrow(/escapes/);
  });
});

describe('validateChain', () => {
  it('accepts an intact chain', () => {
    expect(validateChain(chain())).toEqual({ ok: true });
    expect(validateChain([])).toEqual({ ok: true });
  });
  it('detects a tampered entry', () => {
    const c = chain();
    const e = c[1]?.entries.get('input/a.csv');
    if (e?.type !== 'file') throw new Error('fixture');
    e.hash = hashBytes('id,name\n1,Ana\n2,Eve\n');
    const r = validateChain(c);
    expect(r).toMatchObject({ ok: false, snapshotId: 's2' });
    if (!r.ok) expect(r.reason).toMatch(/entries_hash/);
  });
  it('detects a tampered message or config (snapshot_hash)', () => {
    const c = chain();
    if (c[2]?.metadata) c[2].metadata.snapshot_message = 'something else';
    expect(validateChain(c)).toMatchObject({
      ok: false,
      snapshotId: 's3',
      reason: expect.stringMatching(/snapshot_hash/) as unknown,
    });
  });
  it('detects a reordered snapshot', () => {
    const [s1, s2, s3] = chain() as [Manifest, Manifest, Manifest];
    expect(validateChain([s2, s1, s3])).toMatchObject({ ok: false, snapshotId: 's2' });
    expect(validateChain([s1, s3, s2])).toMatchObject({ ok: false, snapshotId: 's3' });
  });
  it('detects a missing link', () => {
    const [s1, , s3] = chain() as [Manifest, Manifest, Manifest];
    const r = validateChain([s1, s3]);
    expect(r).toMatchObject({ ok: false, snapshotId: 's3' });
    if (!r.ok) expect(r.reason).toMatch(/snapshot_previous/);
  });
  it('detects a forged previous hash even when the link names match', () => {
    const c = chain();
    if (c[0]?.metadata) c[0].metadata.snapshot_hash = '0123456789abcdef';
    expect(validateChain(c)).toMatchObject({ ok: false, snapshotId: 's1' });
  });
});
