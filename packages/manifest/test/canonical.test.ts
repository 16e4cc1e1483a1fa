import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalEntries } from '../src/canonical.js';
import {
  Manifest,
  buildSnapshot,
  parseManifest,
  serializeManifest,
  unusableReason,
  type ManifestEntry,
} from '../src/index.js';

// The fast reader of the canonical layout must give exactly what the general
// (JSON.parse) path gives, and hand everything else to it.

const component = fc.string({
  unit: fc.constantFrom('a', 'Z', '0', '.', '-', ' ', 'é', '漢', '😀', '\\', '"', '~', '\n', '\u0001', '|', '\u007f'),
  minLength: 1,
  maxLength: 8,
});
const relPath = fc.oneof(
  fc.array(component, { minLength: 1, maxLength: 3 }).map((cs) => `input/${cs.join('/')}`),
  fc.constantFrom('2024', '0', '007', '4294967295', '__proto__', 'input/a'),
);
const hex16 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }).map((n) => n.toString(16).padStart(16, '0'));
const entry = (p: string): fc.Arbitrary<ManifestEntry> =>
  fc.oneof(
    fc.record({
      type: fc.constant('file' as const),
      path: fc.constant(p),
      user: fc.oneof(fc.constant('ana@example.org'), fc.string({ maxLength: 6 })),
      filesize: fc.oneof(fc.nat(), fc.constant(Number.MAX_SAFE_INTEGER)),
      mtime: fc.constantFrom('2025-06-01T10:11:12-07:00', '1879-12-31T00:00:00-07:52:58', 'not a time'),
      hash: fc.oneof(fc.constant(''), hex16, fc.constant('XYZ')),
    }),
    fc.record({
      type: fc.constant('link' as const),
      path: fc.constant(p),
      user: fc.string({ maxLength: 6 }),
      reference: fc.constantFrom('../x', 'y/z', '/etc/passwd', 'a"b'),
    }),
  );
const entries = fc.uniqueArray(relPath, { minLength: 1, maxLength: 10 }).chain((ps) => fc.tuple(...ps.map(entry)));

/** The same manifest forced down the general path: one more space after `"entries":` (same JSON meaning). */
const general = (text: string): Manifest => parseManifest(text.replace('{\n  "entries": {', '{\n  "entries":  {'));

function expectSame(a: Manifest, b: Manifest): void {
  expect([...a.entries.keys()]).toEqual([...b.entries.keys()]);
  expect([...a.entries.values()]).toEqual([...b.entries.values()]);
  expect([...a.entries.values()].map(unusableReason)).toEqual([...b.entries.values()].map(unusableReason));
  expect(a.metadata).toEqual(b.metadata);
  expect(a.extra).toEqual(b.extra);
  expect(serializeManifest(a)).toBe(serializeManifest(b));
}

describe('canonical manifest reader', () => {
  it('reads what serializeManifest writes, equal to the general path (marks, order, metadata)', () => {
    let fast = 0;
    fc.assert(
      fc.property(entries, fc.string({ maxLength: 12 }), (es, message) => {
        const m = new Manifest(es);
        const metadata = {
          manifest_version: '0.4.4',
          snapshot_id: 's1',
          created_at: '2025-06-01T10:11:12-07:00',
          entry_count: es.length,
          entries_hash: '0123456789abcdef',
          created_by: 'u',
          snapshot_message: message,
          snapshot_previous: null,
          snapshot_hash: null,
          snapshot_notes: 'sync',
          project_config: { name: message },
        };
        for (const man of [m, new Manifest(es, metadata, { later: [message] })]) {
          const text = serializeManifest(man);
          if (canonicalEntries(text)) fast++;
          expectSame(parseManifest(text), general(text));
        }
      }),
      { numRuns: 400 },
    );
    expect(fast).toBeGreaterThan(20); // the fast path did run (most random names need escapes)
  });

  it('takes a plain dsg manifest, and leaves every other form to the general path', () => {
    const e = (path: string, extra: Partial<ManifestEntry> = {}): ManifestEntry =>
      ({
        type: 'file',
        path,
        user: 'u',
        filesize: 3,
        mtime: '2025-06-01T10:11:12-07:00',
        hash: '',
        ...extra,
      }) as ManifestEntry;
    const text = serializeManifest(new Manifest([e('input/a'), e('input/b')]));
    expect(Object.values(canonicalEntries(text)?.entries ?? {})).toEqual([e('input/a'), e('input/b')]);
    const variants: [string, string][] = [
      ['an escaped quote', text.replace('"user": "u"', '"user": "u\\"x"')],
      ['an escaped name', text.replaceAll('input/a', 'input/\\u0061')],
      ['a raw newline in a string', text.replace('"user": "u"', '"user": "u\nx"')],
      ['a raw control character', text.replace('"user": "u"', '"user": "u\u0001"')],
      ['a size as 3.0', text.replace('"filesize": 3', '"filesize": 3.0')],
      ['a size as 3e0', text.replace('"filesize": 3', '"filesize": 3e0')],
      ['a size with a leading zero', text.replace('"filesize": 3', '"filesize": 03')],
      ['a negative size', text.replace('"filesize": 3', '"filesize": -3')],
      ['a size past 2^53', text.replace('"filesize": 3', '"filesize": 9007199254740993')],
      ['an unknown field', text.replace('"hash": ""\n', '"hash": "",\n      "x": 1\n')],
      [
        'fields reordered',
        text.replace('"type": "file",\n      "path": "input/a"', '"path": "input/a",\n      "type": "file"'),
      ],
      ['tabs', text.replaceAll('  ', '\t')],
      ['a key that is not its path', text.replace('"input/b": {', '"input/c": {')],
      [
        'a duplicate key',
        text.replace(
          '"input/b": {\n      "type": "file",\n      "path": "input/b"',
          '"input/a": {\n      "type": "file",\n      "path": "input/a"',
        ),
      ],
      ['an integer-like key', serializeManifest(new Manifest([e('input/a'), e('2024')]))],
      ['no entries', serializeManifest(new Manifest([]))],
    ];
    for (const [what, v] of variants) {
      expect(canonicalEntries(v), what).toBeNull();
    }
    // and parseManifest answers those as before: equal to JSON.parse's meaning, or the same error
    for (const [what, v] of variants) {
      let got: unknown;
      let want: unknown;
      try {
        got = [...parseManifest(v).entries.values()];
      } catch (err) {
        got = (err as Error).message;
      }
      try {
        want = [...general(v).entries.values()];
      } catch (err) {
        want = (err as Error).message;
      }
      // (error positions differ by the one space general() adds)
      const norm = (x: unknown): unknown => (typeof x === 'string' ? x.replace(/position \d+/, 'P') : x);
      expect(norm(got), what).toEqual(norm(want));
    }
  });

  it('a canonical text whose tail is broken fails exactly as the general path fails', () => {
    const text = serializeManifest(
      buildSnapshot(
        [{ type: 'file', path: 'input/a', user: 'u', filesize: 1, mtime: '2025-06-01T10:11:12-07:00', hash: '' }],
        { snapshotId: 's1', previous: null, message: 'm', user: 'u', createdAt: new Date(0), projectConfig: {} },
      ),
    );
    for (const bad of [
      text.replace('"entry_count": 1', '"entry_count": 2'),
      text.replace('"snapshot_id": "s1",', '"snapshot_id": "s1",\n    "snapshot_id": "s2",'),
      text.replace('"created_at": "', '"created_at": "x'),
      text.slice(0, -3),
      text.replace('"metadata": {', '"entries": {},\n  "metadata": {'),
    ]) {
      expect(canonicalEntries(bad)).not.toBeNull();
      let a = '';
      let b = '';
      try {
        parseManifest(bad, 'f.json');
      } catch (err) {
        a = (err as Error).message;
      }
      try {
        parseManifest(bad.replace('{\n  "entries": {', '{\n  "entries":  {'), 'f.json');
      } catch (err) {
        b = (err as Error).message;
      }
      expect(a).not.toBe('');
      expect(a.replace(/position \d+/, 'P').replace(/line \d+ column \d+/, 'L')).toBe(
        b.replace(/position \d+/, 'P').replace(/line \d+ column \d+/, 'L'),
      );
    }
  });
});
