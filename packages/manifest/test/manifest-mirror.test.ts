import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { INTEROP_FIXTURES } from '@dsg/testenv';
import {
  buildSnapshot,
  decodeMirror,
  encodeMirror,
  parseManifest,
  readManifestMirrored,
  readMirrorColumns,
  serializeManifest,
  unusableReason,
  validateName,
  type Manifest,
  type ManifestEntry,
} from '../src/index.js';
import { YOUNG } from './racy-window.js';

const tmpDirs: string[] = [];
afterAll(async () => {
  for (const d of tmpDirs) await rm(d, { recursive: true, force: true });
});
async function dir(): Promise<string> {
  const d = await mkdtemp(path.join(os.tmpdir(), 'dsg-mirror-'));
  tmpDirs.push(d);
  return d;
}

/** The worked example written as a last sync in a fresh directory: its paths, text and SHA-256. */
async function workedLastSync(): Promise<{ file: string; mirror: string; text: string; sha: string }> {
  const d = await dir();
  const file = path.join(d, 'last-sync.json');
  const text = readFileSync(new URL('./fixtures/worked-example-s2.json', import.meta.url), 'utf8');
  await writeFile(file, text);
  return { file, mirror: path.join(d, 'last-sync.bin'), text, sha: createHash('sha256').update(text).digest('hex') };
}

/** What a reader of the manifest sees: entries (with their unusable marks), metadata, extra keys, the serialization. */
const view = (m: Manifest): unknown => ({
  entries: [...m.entries.values()].map((e) => ({ ...e, unusable: unusableReason(e) })),
  metadata: m.metadata,
  extra: m.extra,
  text: serializeManifest(m),
});

/** Read `text` as a last sync twice: the first read parses and writes the mirror, the second decodes it. */
async function twice(text: string | Buffer): Promise<{ first: Manifest; second: Manifest; mirror: string }> {
  const d = await dir();
  const file = path.join(d, 'last-sync.json');
  const mirror = path.join(d, 'last-sync.bin');
  await writeFile(file, text);
  const first = (await readManifestMirrored(file, mirror, YOUNG))!.manifest;
  const second = (await readManifestMirrored(file, mirror, YOUNG))!.manifest;
  return { first, second, mirror };
}

const exists = (f: string): boolean => {
  try {
    statSync(f);
    return true;
  } catch {
    return false;
  }
};

const interopManifests = (): string[] => {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const full = path.join(d, e.name);
      if (e.isDirectory()) walk(full);
      else if (e.name === 'last-sync.json') out.push(full);
    }
  };
  if (process.env['DSG_REQUIRE_REAL'] === '1' || exists(INTEROP_FIXTURES)) walk(INTEROP_FIXTURES);
  return out;
};

describe('the last sync through its binary mirror', () => {
  it('the spec worked example: a mirror is written, and reading it gives exactly what parsing gives', async () => {
    const text = readFileSync(new URL('./fixtures/worked-example-s2.json', import.meta.url), 'utf8');
    const { first, second, mirror } = await twice(text);
    expect(exists(mirror)).toBe(true);
    expect(view(second)).toEqual(view(parseManifest(text)));
    expect(view(first)).toEqual(view(second));
    expect(serializeManifest(second)).toBe(text);
  });

  it.each(interopManifests())(
    'a manifest written by HRDAG/dsg 0.4.4 (%s) reads the same through the mirror',
    async (f) => {
      const bytes = readFileSync(f);
      const { second } = await twice(bytes);
      expect(view(second)).toEqual(view(parseManifest(bytes)));
    },
  );

  it('random manifests (unicode names, links, users, sizes): decode ∘ encode is the parse', () => {
    const component = fc
      .string({
        unit: fc.constantFrom('a', 'Z', '0', '.', '-', ' ', 'é', '漢', '😀', "'", '%'),
        minLength: 1,
        maxLength: 10,
      })
      .filter((c) => validateName(`input/${c}`) === null);
    const relPath = fc.array(component, { minLength: 1, maxLength: 3 }).map((cs) => `input/${cs.join('/')}`);
    const entry = (p: string): fc.Arbitrary<ManifestEntry> =>
      fc.oneof(
        fc.record({
          type: fc.constant('file' as const),
          path: fc.constant(p),
          user: fc.constantFrom('ana@example.org', 'bo@example.org', 'é@x'),
          filesize: fc.nat(),
          mtime: fc.constant('2025-06-01T10:11:12-07:00'),
          hash: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }).map((n) => n.toString(16).padStart(16, '0')),
        }),
        fc.record({
          type: fc.constant('link' as const),
          path: fc.constant(p),
          user: fc.constant('ana@example.org'),
          reference: fc.constantFrom('y/z', 'é'),
        }),
      );
    const entries = fc.uniqueArray(relPath, { maxLength: 15 }).chain((ps) => fc.tuple(...ps.map(entry)));
    fc.assert(
      fc.property(entries, fc.string({ maxLength: 20 }), (es, message) => {
        const m = buildSnapshot(es, {
          snapshotId: 's3',
          previous: null,
          message,
          user: 'ana@example.org',
          createdAt: new Date(0),
          projectConfig: { name: message },
        });
        const parsed = parseManifest(serializeManifest(m));
        const digest = 'ab'.repeat(32);
        const back = decodeMirror(encodeMirror(parsed, digest), digest);
        expect(back && view(back)).toEqual(view(parsed));
      }),
      { numRuns: 150 },
    );
  });

  it('a mirror of other bytes, or a damaged one, is never used: the JSON is read and the mirror rewritten', async () => {
    const { file, mirror, text } = await workedLastSync();
    await readManifestMirrored(file, mirror, YOUNG);
    const good = await readFile(mirror);
    const damaged: [string, Buffer][] = [
      ['truncated', good.subarray(0, good.length - 3)],
      ['a flipped body byte', Buffer.concat([good.subarray(0, -1), Buffer.of(good.at(-1)! ^ 1)])],
      ['another magic', Buffer.concat([Buffer.from('xsgmirr\n'), good.subarray(8)])],
      ['another version', Buffer.concat([good.subarray(0, 8), Buffer.of(9, 0, 0, 0), good.subarray(12)])],
      ['empty', Buffer.alloc(0)],
    ];
    for (const [what, bytes] of damaged) {
      await writeFile(mirror, bytes);
      const r = await readManifestMirrored(file, mirror, YOUNG);
      expect(view(r!.manifest), what).toEqual(view(parseManifest(text)));
      expect(await readFile(mirror), what).toEqual(good);
    }
    // the last sync changed (a new sync): the old mirror is stale and ignored
    const next = text.replace('"snapshot_message": "second"', '"snapshot_message": "other"');
    expect(next).not.toBe(text);
    await writeFile(file, next);
    expect((await readManifestMirrored(file, mirror, YOUNG))!.manifest.metadata!.snapshot_message).toBe('other');
    expect(await readFile(mirror)).not.toEqual(good);
  });

  it('a mirror made from these very bytes is what is read (the JSON is not parsed again)', async () => {
    const { file, mirror, text } = await workedLastSync();
    await readManifestMirrored(file, mirror, YOUNG);
    // a mirror carrying another message, bound to the same bytes' digest, shows through
    const m = parseManifest(text);
    m.metadata!.snapshot_message = 'from the mirror';
    const good = await readFile(mirror);
    await writeFile(mirror, encodeMirror(m, good.toString('latin1', 16, 80)));
    const r = (await readManifestMirrored(file, mirror, YOUNG))!;
    expect(r.manifest.metadata!.snapshot_message).toBe('from the mirror');
    // what binds them: the SHA-256 of the file's bytes (a teammate could craft an xxh3 collision)
    expect(r.sha256).toBe(createHash('sha256').update(text).digest('hex'));
    expect(good.toString('latin1', 16, 80)).toBe(r.sha256);
  });

  it('manifests the mirror cannot reproduce get none: unknown fields, unusable entries, no metadata', async () => {
    const unknown = readFileSync(new URL('./fixtures/unknown-fields.json', import.meta.url), 'utf8');
    const worked = JSON.parse(readFileSync(new URL('./fixtures/worked-example-s2.json', import.meta.url), 'utf8')) as {
      entries: Record<string, Record<string, unknown>>;
      metadata: unknown;
    };
    const [firstKey] = Object.keys(worked.entries);
    const unusable = JSON.stringify({
      ...worked,
      entries: { ...worked.entries, [firstKey!]: { ...worked.entries[firstKey!], mtime: 'not a time' } },
    });
    const noMetadata = JSON.stringify({ entries: worked.entries });
    for (const text of [unknown, unusable, noMetadata]) {
      const { first, second, mirror } = await twice(text);
      expect(exists(mirror)).toBe(false);
      expect(view(second)).toEqual(view(first));
      expect(view(first)).toEqual(view(parseManifest(text)));
    }
  });

  it('a lone surrogate (valid JSON, no UTF-8 form) in a user or a link target: no mirror, the parse as it is', async () => {
    const worked = JSON.parse(readFileSync(new URL('./fixtures/worked-example-s2.json', import.meta.url), 'utf8')) as {
      entries: Record<string, Record<string, unknown>>;
    };
    const [firstKey] = Object.keys(worked.entries);
    const odd = JSON.stringify({
      ...worked,
      entries: { ...worked.entries, [firstKey!]: { ...worked.entries[firstKey!], user: 'ana\udc00' } },
    });
    expect(odd).toContain('\\udc00');
    const { second, mirror } = await twice(odd);
    expect(exists(mirror)).toBe(false);
    expect(second.entries.get(firstKey!)!.user).toBe('ana\udc00');
    expect(view(second)).toEqual(view(parseManifest(odd)));
  });

  it('a mirror written under other entry rules (an older or newer dsg) is judged again, not trusted', async () => {
    const { file, mirror, text } = await workedLastSync();
    await readManifestMirrored(file, mirror, YOUNG);
    const good = await readFile(mirror);
    const other = Buffer.from(good);
    other.writeUInt32LE(good.readUInt32LE(8) + 1, 8); // the rules version is the low half
    const m = parseManifest(text);
    m.metadata!.snapshot_message = 'judged under other rules';
    const forged = encodeMirror(m, good.toString('latin1', 16, 80));
    forged.writeUInt32LE(other.readUInt32LE(8), 8);
    await writeFile(mirror, forged);
    expect((await readManifestMirrored(file, mirror, YOUNG))!.manifest.metadata!.snapshot_message).toBe('second');
    expect(await readFile(mirror)).toEqual(good);
  });

  it('a mirror bound to the file as it is answers without the JSON: any rewrite, or a change too close to the check, reads it again', async () => {
    const { file, mirror, text, sha } = await workedLastSync();
    await readManifestMirrored(file, mirror, YOUNG); // writes the mirror, unbound
    const unbound = await readFile(mirror);
    // a file that changed just now: its times cannot be trusted yet, so no binding is written
    const fresh = await readMirrorColumns(file, mirror, YOUNG);
    expect(fresh).toMatchObject({ size: Buffer.byteLength(text), sha256: sha });
    expect(fresh!.columns!.n).toBe(parseManifest(text).entries.size);
    expect(await readFile(mirror)).toEqual(unbound);
    // old enough (racyMs 0 here): hashed once more, then bound
    expect((await readMirrorColumns(file, mirror, { racyMs: 0 }))!.sha256).toBe(sha);
    const bound = await readFile(mirror);
    expect(bound).not.toEqual(unbound);
    // proof that a bound read takes the recorded digest and never hashes the file: record another one
    const other = Buffer.from(bound);
    other.write('e'.repeat(64), 16, 'latin1');
    await writeFile(mirror, other);
    const trusted = (await readMirrorColumns(file, mirror, { racyMs: 0 }))!;
    expect(trusted.sha256).toBe('e'.repeat(64));
    expect(trusted.columns!.n).toBe(parseManifest(text).entries.size);
    // the same binding while the file is young (within the racy window): hashed, so the lie shows
    const racy = (await readMirrorColumns(file, mirror, YOUNG))!;
    expect(racy.sha256).toBe(sha);
    expect(racy.columns).toBeNull();
    // a rewrite with the same bytes (new ctime): hashed again
    await utimes(file, new Date(), new Date());
    const touched = (await readMirrorColumns(file, mirror, { racyMs: 0 }))!;
    expect(touched.sha256).toBe(sha);
    expect(touched.columns).toBeNull();
    // another manifest in its place, same size: hashed, the old mirror does not stand for it
    const next = text.replace('"snapshot_message": "second"', '"snapshot_message": "other!"');
    expect(next.length).toBe(text.length);
    await writeFile(mirror, bound);
    await writeFile(file, next);
    const rewritten = (await readMirrorColumns(file, mirror, { racyMs: 0 }))!;
    expect(rewritten.sha256).toBe(createHash('sha256').update(next).digest('hex'));
    expect(rewritten.columns).toBeNull();
  });

  it('readManifestMirrored takes a bound mirror without reading the JSON, and hashes a file it cannot vouch for', async () => {
    const { file, mirror, text, sha } = await workedLastSync();
    expect(await readManifestMirrored(file, mirror, { racyMs: 0 })).toMatchObject({
      size: Buffer.byteLength(text),
      sha256: sha,
    });
    // the first read wrote the mirror; the second binds it (the file is old enough under racyMs 0)
    await readManifestMirrored(file, mirror, { racyMs: 0 });
    const bound = await readFile(mirror);
    // proof the bound read neither reads nor hashes the JSON: the mirror records another digest, and is believed
    const lie = Buffer.from(bound);
    lie.write('e'.repeat(64), 16, 'latin1');
    await writeFile(mirror, lie);
    const trusted = (await readManifestMirrored(file, mirror, { racyMs: 0 }))!;
    expect(trusted.sha256).toBe('e'.repeat(64));
    expect(trusted.size).toBe(Buffer.byteLength(text));
    expect(view(trusted.manifest)).toEqual(view(parseManifest(text)));
    // while the file is young the same binding does not count: the bytes are hashed, and the lie shows
    const racy = (await readManifestMirrored(file, mirror, YOUNG))!;
    expect(racy.sha256).toBe(sha);
    expect(view(racy.manifest)).toEqual(view(parseManifest(text)));
  });

  it('no last sync: null, and no mirror', async () => {
    const d = await dir();
    expect(await readManifestMirrored(path.join(d, 'none.json'), path.join(d, 'none.bin'))).toBeNull();
    expect(exists(path.join(d, 'none.bin'))).toBe(false);
  });
});
