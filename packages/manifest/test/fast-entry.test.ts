import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { entryShapeSchema, entrySchema, isEntryShapeFast, isValidEntryFast } from '../src/model.js';
import { parseManifest } from '../src/format.js';

// The hand-written entry check must accept exactly what the zod schema accepts.
const good = {
  type: 'file',
  path: 'input/a.csv',
  user: 'ana@example.org',
  filesize: 3,
  mtime: '2025-06-01T10:11:12-07:00',
  hash: '0123456789abcdef',
};
const link = { type: 'link', path: 'input/l', user: 'ana@example.org', reference: 'a.csv' };

const cases: unknown[] = [
  good,
  link,
  { ...good, hash: '' },
  { ...good, extra: { nested: true } },
  { ...good, type: 'dir' },
  { ...good, path: '../x' },
  { ...good, path: '/abs' },
  { ...good, path: 'input/a\u0000b' },
  { ...good, path: 'input/e\u0301' }, // NFD
  { ...good, path: '' },
  { ...good, path: 'x'.repeat(5000) },
  { ...good, user: 3 },
  { ...good, filesize: -1 },
  { ...good, filesize: 1.5 },
  { ...good, filesize: 2 ** 60 },
  { ...good, filesize: '3' },
  { ...good, mtime: '2025-06-01 10:11:12' },
  { ...good, mtime: '2025-13-01T10:11:12-07:00' },
  { ...good, hash: '0123456789ABCDEF' },
  { ...good, hash: '0123' },
  { ...good, hash: null },
  { ...link, reference: '/etc/passwd' },
  { ...link, reference: '../../outside' },
  { ...link, reference: '' },
  { ...link, reference: 5 },
  { type: 'file' },
  null,
  [],
  'file',
  42,
];

describe('isValidEntryFast', () => {
  it.each(cases.map((c, i) => [i, c]))('case %i: same verdict as entrySchema', (_i, c) => {
    expect(isValidEntryFast(c)).toBe(entrySchema.safeParse(c).success);
  });

  it('agrees with entrySchema on generated entries (property)', () => {
    const anyValue = fc.oneof(fc.string(), fc.integer(), fc.double(), fc.constant(null), fc.boolean());
    const mutated = fc.record({
      type: fc.constantFrom('file', 'link', 'other'),
      path: fc.oneof(fc.constantFrom('input/a', '../a', '/a', 'input//a', 'input/./a', 'input/a/'), fc.string()),
      user: fc.oneof(fc.string(), anyValue),
      filesize: fc.oneof(fc.nat(), fc.integer(), fc.double(), anyValue),
      mtime: fc.oneof(fc.constant(good.mtime), fc.string(), anyValue),
      hash: fc.oneof(fc.constantFrom('', good.hash, good.hash.toUpperCase()), fc.string(), anyValue),
      reference: fc.oneof(fc.constantFrom('a', '../a', '../../a', '/a', ''), fc.string(), anyValue),
    });
    fc.assert(
      fc.property(mutated, (e) => {
        expect(isValidEntryFast(e)).toBe(entrySchema.safeParse(e).success);
      }),
      { numRuns: 2000 },
    );
  });

  it("a manifest with one misshapen entry among good ones still gets zod's error naming that entry", () => {
    const entries: Record<string, unknown> = {};
    for (let i = 0; i < 50; i++) entries[`input/f${i}`] = { ...good, path: `input/f${i}` };
    entries['input/f7'] = { ...good, path: 'input/f7', filesize: '3' };
    expect(() => parseManifest(JSON.stringify({ entries, metadata: null }), 'm.json')).toThrow(
      /entries\["input\/f7"\]\.filesize/,
    );
  });
});

// The hand-written shape check (the parse's fast path) must accept exactly what the zod shape schema accepts.
describe('isEntryShapeFast', () => {
  it.each(cases.map((c, i) => [i, c]))('case %i: same verdict as entryShapeSchema', (_i, c) => {
    expect(isEntryShapeFast(c)).toBe(entryShapeSchema.safeParse(c).success);
  });

  it('accepts every entry entrySchema accepts, and rule-breaking entries of the right shape', () => {
    for (const c of cases) if (entrySchema.safeParse(c).success) expect(isEntryShapeFast(c)).toBe(true);
    expect(
      isEntryShapeFast({ ...good, path: 'input/a\\b.csv', mtime: '1879-12-31T00:00:00-07:52:58', hash: 'XYZ' }),
    ).toBe(true);
    expect(isEntryShapeFast({ ...link, reference: '../../outside.txt' })).toBe(true);
  });

  it('agrees with entryShapeSchema on generated entries (property)', () => {
    const anyValue = fc.oneof(fc.string(), fc.integer(), fc.double(), fc.constant(null), fc.boolean());
    const mutated = fc.record(
      {
        type: fc.constantFrom('file', 'link', 'other'),
        path: fc.oneof(fc.constantFrom('input/a', '../a', ''), fc.string(), anyValue),
        user: fc.oneof(fc.string(), anyValue),
        filesize: fc.oneof(fc.nat(), fc.integer(), fc.double(), fc.constant(2 ** 60), anyValue),
        mtime: fc.oneof(fc.constant(good.mtime), fc.string(), anyValue),
        hash: fc.oneof(fc.constantFrom('', good.hash), fc.string(), anyValue),
        reference: fc.oneof(fc.constantFrom('a', '../../a', '/a'), fc.string(), anyValue),
      },
      { requiredKeys: ['type'] },
    );
    fc.assert(
      fc.property(mutated, (e) => {
        expect(isEntryShapeFast(e)).toBe(entryShapeSchema.safeParse(e).success);
      }),
      { numRuns: 2000 },
    );
  });
});
