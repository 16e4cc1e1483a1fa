/**
 * The memory-lean paths of the manifest (serialization straight to bytes,
 * archives from bytes, parse sharing strings, classification by merge, the
 * duplicate-key scan) against the plain ones they replace: the same bytes,
 * the same plans, the same verdicts.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { mkdir, mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  buildSnapshot,
  classify,
  classifyPath,
  comparePaths,
  identicalEntry,
  scanProject,
  compressArchive,
  decompressArchive,
  Manifest,
  parseManifest,
  serializeManifest,
  serializeManifestBytes,
  serializeManifestChunks,
  ByteSums,
  hashBytes,
  STATE_ACTIONS,
  type FileEntry,
  type ManifestEntry,
  type PathPlan,
} from '../src/index.js';
import { findDuplicateKey, hasDuplicateKey, pretty, OrderedObject, RawJson } from '../src/json.js';
import { entryPairs, metadataPairs } from '../src/format.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const fixture = (name: string): string => readFileSync(path.join(here, 'fixtures', name), 'utf8');

// shared/ sits beside the checkout (as for the CLI's interop tests)
const INTEROP =
  process.env['DSG_INTEROP_FIXTURES'] ?? path.resolve(here, '..', '..', '..', '..', 'shared', 'interop', 'fixtures');

/** Every last-sync.json, sync-messages.json-free, and archive (as JSON text) of the original's fixtures. */
function interopManifests(): { name: string; text: string }[] {
  if (!existsSync(INTEROP)) {
    if (process.env['DSG_REQUIRE_REAL'] === '1') throw new Error(`interop fixtures missing at ${INTEROP}`);
    return [];
  }
  const out: { name: string; text: string }[] = [];
  const walk = (dir: string): void => {
    for (const d of readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, d.name);
      if (d.isDirectory()) walk(p);
      else if (d.name === 'last-sync.json')
        out.push({ name: path.relative(INTEROP, p), text: readFileSync(p, 'utf8') });
      else if (d.name.endsWith('-sync.json.lz4'))
        out.push({ name: path.relative(INTEROP, p), text: decompressArchive(readFileSync(p), p) });
    }
  };
  walk(INTEROP);
  return out;
}

/** The serializer as it was before it wrote pieces: one string of all entries through pretty(). */
function referenceSerialize(m: Manifest, withMetadataKey: boolean): string {
  const parts: string[] = [];
  for (const [k, e] of m.entries)
    parts.push(`    ${JSON.stringify(k)}: ${pretty(new OrderedObject(entryPairs(e)), '    ')}`);
  const entries = new RawJson(parts.length ? `{\n${parts.join(',\n')}\n  }` : '{}');
  const top: [string, unknown][] = [['entries', entries]];
  if (withMetadataKey) top.push(['metadata', m.metadata ? new OrderedObject(metadataPairs(m.metadata)) : null]);
  for (const [k, v] of Object.entries(m.extra)) top.push([k, v]);
  return pretty(new OrderedObject(top));
}

const file = (p: string, i: number, user = 'ann@example.org'): FileEntry => ({
  type: 'file',
  path: p,
  user,
  filesize: i,
  mtime: '2024-01-02T03:04:05-08:00',
  hash: (i * 2654435761).toString(16).padStart(16, '0').slice(-16),
});

describe('serializeManifestBytes', () => {
  it('is the bytes of the worked example and of unknown fields, escapes and non-ASCII', () => {
    for (const name of ['worked-example-s2.json', 'unknown-fields.json']) {
      const text = fixture(name);
      const m = parseManifest(text, name);
      expect(serializeManifestBytes(m).equals(Buffer.from(text, 'utf8'))).toBe(true);
      expect(serializeManifest(m)).toBe(text);
      expect(serializeManifest(m)).toBe(referenceSerialize(m, true));
    }
  });

  it("is the bytes of every manifest and archive of the original's fixtures", () => {
    const all = interopManifests();
    if (existsSync(INTEROP)) expect(all.length).toBeGreaterThan(10);
    for (const { name, text } of all) {
      const m = parseManifest(text, name);
      expect(serializeManifestBytes(m).toString('utf8'), name).toBe(text);
      expect(serializeManifest(m), name).toBe(referenceSerialize(m, true));
    }
  });

  it('keeps an absent metadata key absent, a null one null, and an empty manifest', () => {
    for (const text of ['{\n  "entries": {}\n}', '{\n  "entries": {},\n  "metadata": null\n}']) {
      expect(serializeManifestBytes(parseManifest(text)).toString()).toBe(text);
    }
    expect(serializeManifestBytes(Manifest.empty()).toString()).toBe('{\n  "entries": {},\n  "metadata": null\n}');
  });

  it('crosses piece boundaries with multi-byte characters and escapes intact (a large snapshot)', () => {
    const entries: ManifestEntry[] = [];
    for (let i = 0; i < 3000; i++) {
      // names keep the name rules; the user field takes the escapes (quote, backslash, a control character)
      const odd = i % 7 === 0 ? `résumé-${i}-𝄞` : `f${i}`;
      const user = i % 5 === 0 ? 'zoë@example.org' : i % 11 === 0 ? 'q"b\\s\u0001@example.org' : 'ann@example.org';
      entries.push(file(`input/d${i % 13}/${odd}.csv`, i, user));
    }
    entries.push({ type: 'link', path: 'input/ln', user: 'ann@example.org', reference: 'd1/f1.csv' });
    const m = buildSnapshot(entries, {
      snapshotId: 's1',
      previous: null,
      message: 'größer "as" it gets',
      user: 'ann@example.org',
      createdAt: new Date(Date.UTC(2024, 0, 2)),
      projectConfig: { name: 'x', data_dirs: ['input'] },
      notes: 'init',
    });
    const bytes = serializeManifestBytes(m);
    const text = referenceSerialize(m, true);
    expect(text.length).toBeGreaterThan(3 * 64 * 1024); // several pieces
    expect(bytes.equals(Buffer.from(text, 'utf8'))).toBe(true);
    expect(serializeManifest(m)).toBe(text);
    expect(serializeManifestBytes(parseManifest(bytes)).equals(bytes)).toBe(true);
    // in chunks (how a sync writes it): the same bytes, never one chunk much bigger than a piece
    const chunks = [...serializeManifestChunks(m)];
    expect(chunks.length).toBeGreaterThan(3);
    expect(Math.max(...chunks.map((c) => c.length))).toBeLessThan(2 * 64 * 1024 + 4096);
    expect(Buffer.concat(chunks).equals(bytes)).toBe(true);
    // ByteSums over those chunks: the sums of the whole
    const sums = new ByteSums();
    expect(() => sums.result()).toThrow(/not read to the end/);
    const passed = [...sums.tap(serializeManifestChunks(m))];
    expect(Buffer.concat(passed).equals(bytes)).toBe(true);
    expect(sums.result()).toEqual({
      size: bytes.length,
      hash: hashBytes(bytes),
      sha256: createHash('sha256').update(bytes).digest('hex'),
    });
  });

  it('ByteSums refuses sums of bytes read only in part', () => {
    const sums = new ByteSums();
    const it = sums.tap([Buffer.from('ab'), Buffer.from('cd')]);
    expect(it.next().value).toEqual(Buffer.from('ab'));
    expect(() => sums.result()).toThrow(/not read to the end/);
    expect([...it].length).toBe(1);
    expect(sums.result().size).toBe(4);
  });

  it('round-trips generated manifests byte for byte, bytes and text alike', () => {
    const name = fc
      .array(fc.constantFrom('a', 'z', 'é', '𝄞', '-'), { minLength: 1, maxLength: 12 })
      .map((cs) => cs.join(''));
    const user = fc.constantFrom('ann@example.org', 'zoë', 'q"b\\s\u0001');
    fc.assert(
      fc.property(fc.uniqueArray(name, { maxLength: 40 }), user, fc.boolean(), (names, u, withMd) => {
        const entries = names.map((n, i) => file(`input/${n}`, i, u));
        const m = withMd
          ? buildSnapshot(entries, {
              snapshotId: 's1',
              previous: null,
              message: 'm',
              user: 'u',
              createdAt: new Date(0),
              projectConfig: null,
            })
          : new Manifest(entries);
        const text = referenceSerialize(m, true);
        expect(serializeManifestBytes(m).toString('utf8')).toBe(text);
        expect(serializeManifest(parseManifest(text))).toBe(text);
      }),
      { numRuns: 100 },
    );
  });
});

describe('parseManifest shares strings', () => {
  it('gives equal users one string and each entry its key as path, the model unchanged', () => {
    const m = parseManifest(fixture('worked-example-s2.json'));
    const users = new Set([...m.entries.values()].map((e) => e.user));
    for (const [k, e] of m.entries) expect(e.path).toBe(k);
    expect(users.size).toBeGreaterThan(0);
    expect(serializeManifest(m)).toBe(fixture('worked-example-s2.json'));
  });
});

describe('compressArchive from bytes', () => {
  it('makes the same frame from the bytes as from the text', () => {
    const text = fixture('unknown-fields.json');
    const bytes = Buffer.from(text, 'utf8');
    expect(compressArchive(bytes).equals(compressArchive(text))).toBe(true);
    expect(decompressArchive(compressArchive(bytes.subarray(0)))).toBe(text);
    // a view into a larger buffer compresses only its own bytes
    const big = Buffer.concat([Buffer.from('xx'), bytes, Buffer.from('yy')]);
    expect(decompressArchive(compressArchive(big.subarray(2, 2 + bytes.length)))).toBe(text);
  });
});

/** classify as it was: a set of all paths, sorted. */
function referenceClassify(l: Manifest, c: Manifest, r: Manifest): PathPlan[] {
  const paths = new Set([...l.entries.keys(), ...c.entries.keys(), ...r.entries.keys()]);
  return [...paths].sort(comparePaths).map((p) => {
    const [a, b, d] = [l.entries.get(p), c.entries.get(p), r.entries.get(p)];
    const state = classifyPath(a, b, d);
    const plan: PathPlan = { path: p, state, action: STATE_ACTIONS[state] };
    if (a) plan.local = a;
    if (b) plan.cache = b;
    if (d) plan.remote = d;
    return plan;
  });
}

describe('classify by merge', () => {
  it('plans exactly as a sort of all paths does, sorted inputs or not, shared manifests or not', () => {
    const side = fc.uniqueArray(
      fc.record({
        p: fc
          .array(fc.constantFrom('a', 'b', '/', 'é', '𝄞', '\uE000'), { minLength: 1, maxLength: 4 })
          .map((cs) => cs.join('')),
        v: fc.integer({ min: 0, max: 2 }),
      }),
      { selector: (x) => x.p, maxLength: 12 },
    );
    fc.assert(
      fc.property(side, side, side, fc.integer({ min: 0, max: 3 }), (ls, cs, rs, share) => {
        const mk = (xs: { p: string; v: number }[]): Manifest => new Manifest(xs.map((x) => file(x.p, x.v)));
        const l = mk(ls);
        const c = share === 1 ? l : mk(cs);
        const r = share === 2 ? c : share === 3 ? l : mk(rs);
        expect(classify(l, c, r)).toStrictEqual(referenceClassify(l, c, r));
      }),
      { numRuns: 300 },
    );
  });

  it('classifies extra entries as a copy of each manifest holding them would (an extra wins over the own entry)', () => {
    const side = fc.uniqueArray(
      fc.record({ p: fc.constantFrom('a', 'b', 'c', 'é'), v: fc.integer({ min: 0, max: 2 }) }),
      { selector: (x) => x.p },
    );
    const extra = fc.option(
      fc.record({ p: fc.constantFrom('.dsgconfig.yml', 'b', 'z'), v: fc.integer({ min: 0, max: 2 }) }),
      {
        nil: undefined,
      },
    );
    fc.assert(
      fc.property(side, side, side, extra, extra, extra, fc.boolean(), (ls, cs, rs, el, ec, er, share) => {
        const mk = (xs: { p: string; v: number }[]): Manifest => new Manifest(xs.map((x) => file(x.p, x.v)));
        const l = mk(ls);
        const c = mk(cs);
        const r = share ? c : mk(rs);
        const ex = (x: { p: string; v: number } | undefined): ManifestEntry[] => (x ? [file(x.p, x.v + 10)] : []);
        const plus = (m: Manifest, e: ManifestEntry[]): Manifest =>
          e.length ? new Manifest([...m.entries.values(), ...e]) : m;
        expect(classify(l, c, r, { local: ex(el), cache: ex(ec), remote: ex(er) })).toStrictEqual(
          referenceClassify(plus(l, ex(el)), plus(c, ex(ec)), plus(r, ex(er))),
        );
      }),
      { numRuns: 300 },
    );
  });
});

describe('findDuplicateKey', () => {
  it('finds a duplicate in a small object, in a big one (past the array search), and none where there is none', () => {
    const keys = Array.from({ length: 40 }, (_, i) => `"k${i}": ${i}`);
    expect(findDuplicateKey(`{${keys.join(', ')}}`)).toBeNull();
    expect(findDuplicateKey(`{${keys.join(', ')}, "k3": 1}`)).toEqual(['k3']);
    expect(findDuplicateKey(`{${keys.join(', ')}, "k39": 1}`)).toEqual(['k39']);
    expect(findDuplicateKey(`{"e": {"a": {"x": 1, "y": 2, "x": 3}}}`)).toEqual(['e', 'a', 'x']);
    expect(findDuplicateKey(`{"a": [{"x": 1}, {"x": 2, "\\u0078": 3}]}`)).toEqual(['a', '1', 'x']);
    expect(findDuplicateKey(`{"a": {"x": 1}, "b": {"x": 1}}`)).toBeNull();
  });
});

describe("identicalEntry and the scan sharing the last sync's entries", () => {
  it('is field-for-field sameness, unknown fields and user included', () => {
    const a = file('input/a', 1);
    expect(identicalEntry(a, { ...a })).toBe(true);
    expect(identicalEntry(a, { ...a, user: 'other' })).toBe(false);
    expect(identicalEntry(a, { ...a, mtime: '2024-01-02T11:04:05+00:00' })).toBe(false); // same instant, other text
    expect(identicalEntry(a, { ...a, extra: 1 } as FileEntry)).toBe(false);
    const l: ManifestEntry = { type: 'link', path: 'input/l', user: 'u', reference: 'a' };
    expect(identicalEntry(l, { ...l })).toBe(true);
    expect(identicalEntry(l, { ...l, reference: 'b' })).toBe(false);
    expect(identicalEntry(l, a)).toBe(false);
  });

  it('gives an unchanged file the previous entry object itself, a changed one a new entry', async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), 'dsg-share-'));
    try {
      await mkdir(path.join(root, 'input'));
      for (const n of ['a', 'b']) {
        await writeFile(path.join(root, 'input', n), n);
        await utimes(path.join(root, 'input', n), 1_700_000_000, 1_700_000_000);
      }
      const opts = { root, dataDirs: ['input'], user: 'ann@example.org' };
      const first = (await scanProject(opts)).manifest;
      // the previous manifest as read from a file: its own objects
      const previous = parseManifest(serializeManifest(first));
      await writeFile(path.join(root, 'input', 'b'), 'changed');
      const again = (await scanProject({ ...opts, previous })).manifest;
      expect(again.entries.get('input/a')).toBe(previous.entries.get('input/a'));
      expect(again.entries.get('input/b')).not.toBe(previous.entries.get('input/b'));
      expect(again.entries.get('input/b')).toMatchObject({ filesize: 7 });
      // and the result serializes as a fresh scan would
      expect(serializeManifest(again)).toBe(serializeManifest((await scanProject(opts)).manifest));
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});

describe('hasDuplicateKey (counting) agrees with findDuplicateKey (naming)', () => {
  /** JSON text of nested objects and arrays whose objects may repeat a key (as a hostile file would). */
  const json: fc.Arbitrary<string> = fc.letrec<{ v: string }>((tie) => ({
    v: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      fc.constantFrom('1', '"s"', 'null', '"x\\"y"'),
      fc
        .array(
          fc.tuple(fc.constantFrom('a', 'b', '0', '1', '__proto__', '\\u0061', 'k\\"q', 'constructor'), tie('v')),
          { maxLength: 5 },
        )
        .map((ps) => `{${ps.map(([k, v]) => `"${k}": ${v}`).join(', ')}}`),
      fc.array(tie('v'), { maxLength: 4 }).map((xs) => `[${xs.join(',')}]`),
    ),
  })).v;

  it('on random nested JSON with and without repeated keys', () => {
    fc.assert(
      fc.property(json, (text) => {
        const has = hasDuplicateKey(text, JSON.parse(text));
        expect(has).toBe(findDuplicateKey(text) !== null);
      }),
      { numRuns: 2000 },
    );
  });

  it('on manifests: a repeated entry, a repeated field, none', () => {
    const text = fixture('worked-example-s2.json');
    expect(hasDuplicateKey(text, JSON.parse(text))).toBe(false);
    const twice = text.replace('"entries": {', '"entries": {\n    "input/a.csv": {"type": "link"},');
    expect(hasDuplicateKey(twice, JSON.parse(twice))).toBe(true);
    const field = text.replace('"type": "file",', '"type": "file", "type": "file",');
    expect(hasDuplicateKey(field, JSON.parse(field))).toBe(true);
  });
});
