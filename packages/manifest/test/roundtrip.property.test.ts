import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compactEntryReference } from '../src/format.js';
import {
  Manifest,
  buildSnapshot,
  compactEntry,
  parseManifest,
  serializeManifest,
  validateName,
  type ManifestEntry,
} from '../src/index.js';

// Components from a mix of ASCII, accented (NFC), CJK, emoji and JSON-special characters.
const component = fc
  .string({
    unit: fc.constantFrom('a', 'Z', '0', '.', '-', '_', ' ', 'é', 'ß', '漢', '😀', '\\', "'", '#', '%', '\u00a0'),
    minLength: 1,
    maxLength: 12,
  })
  .filter((c) => validateName(`input/${c}`) === null);
const relPath = fc.array(component, { minLength: 1, maxLength: 3 }).map((cs) => `input/${cs.join('/')}`);
const hex16 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }).map((n) => n.toString(16).padStart(16, '0'));
const entry = (p: string): fc.Arbitrary<ManifestEntry> =>
  fc.oneof(
    fc.record({
      type: fc.constant('file' as const),
      path: fc.constant(p),
      user: fc.string({ maxLength: 20 }),
      filesize: fc.nat(),
      mtime: fc.constant('2025-06-01T10:11:12-07:00'),
      hash: fc.oneof(fc.constant(''), hex16),
    }),
    fc.record({
      type: fc.constant('link' as const),
      path: fc.constant(p),
      user: fc.string({ maxLength: 20 }),
      reference: fc.constantFrom('../x', 'y/z', '../input/é'),
    }),
  );
const entries = fc.uniqueArray(relPath, { maxLength: 12 }).chain((ps) => fc.tuple(...ps.map(entry)));

describe('format properties', () => {
  it('serialize = JSON.stringify(…, null, 2) layout; parse ∘ serialize is the identity; fast compact = reference', () => {
    fc.assert(
      fc.property(entries, fc.string({ maxLength: 30 }), (es, message) => {
        const m = buildSnapshot(es, {
          snapshotId: 's1',
          previous: null,
          message,
          user: 'u',
          createdAt: new Date(0),
          projectConfig: { name: message, n: [1, { b: null }] },
        });
        const text = serializeManifest(m);
        const plain = { entries: Object.fromEntries([...m.entries].map(([k, e]) => [k, e])), metadata: m.metadata };
        expect(text).toBe(JSON.stringify(plain, null, 2));
        const back = parseManifest(text);
        expect(serializeManifest(back)).toBe(text);
        expect([...back.entries.values()]).toEqual([...m.entries.values()]);
        for (const e of es) expect(compactEntry(e)).toBe(compactEntryReference(e));
      }),
      { numRuns: 300 },
    );
  });

  it('an entry with unknown fields takes the general path and keeps them', () => {
    const e = {
      type: 'file',
      path: 'input/a',
      user: 'u',
      filesize: 1,
      mtime: '2025-06-01T10:11:12-07:00',
      hash: '',
      x: [1],
    } as ManifestEntry;
    const text = serializeManifest(new Manifest([e]));
    expect(text).toContain('"hash": "",\n      "x": [\n        1\n      ]\n    }');
    expect(parseManifest(text).entries.get('input/a')).toEqual(e);
  });
});
