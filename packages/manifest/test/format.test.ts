import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { ValidationError } from '@dsg/contracts';
import {
  recordedMtimeMs,
  Manifest,
  parseManifest,
  readManifestFile,
  serializeManifest,
  writeManifestFile,
  formatTimestamp,
  parseTimestamp,
  compressArchive,
  decompressArchive,
  unusableReason,
} from '../src/index.js';

const fixture = (name: string): string => readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8');
const tmpDirs: string[] = [];
afterAll(async () => {
  for (const d of tmpDirs) await rm(d, { recursive: true, force: true });
});

function expectInvalid(text: string, field: string | RegExp, source = 'last-sync.json'): ValidationError {
  let err: unknown;
  try {
    parseManifest(text, source);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(ValidationError);
  const v = err as ValidationError;
  expect(v.details.file).toBe(source);
  if (typeof field === 'string') expect(v.details.field).toBe(field);
  else expect(v.details.field).toMatch(field);
  expect(v.message).toContain(source);
  return v;
}

describe('manifest JSON format', () => {
  it('round-trips the worked example byte-identically', () => {
    const text = fixture('worked-example-s2.json');
    const m = parseManifest(text, 'worked-example-s2.json');
    expect([...m.entries.keys()]).toEqual(['input/a.csv', 'input/b.txt', 'output/latest.csv', 'output/résumé.csv']);
    expect(m.metadata?.snapshot_hash).toBe('beddf1425833c764');
    expect(serializeManifest(m)).toBe(text);
  });

  it('keeps unknown fields, escapes and non-ASCII on rewrite', () => {
    const text = fixture('unknown-fields.json');
    const m = parseManifest(Buffer.from(text, 'utf8'));
    expect(serializeManifest(m)).toBe(text);
    expect(text).toContain('zoë'); // non-ASCII stays as-is
  });

  it('writes through a temp file and reads back; a missing file reads as null', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'dsg-manifest-'));
    tmpDirs.push(dir);
    const file = path.join(dir, 'last-sync.json');
    expect(await readManifestFile(file)).toBeNull();
    const m = parseManifest(fixture('worked-example-s2.json'));
    await writeManifestFile(file, m);
    expect(await readFile(file, 'utf8')).toBe(fixture('worked-example-s2.json'));
    expect(serializeManifest((await readManifestFile(file)) as Manifest)).toBe(fixture('worked-example-s2.json'));
    await expect(readManifestFile(dir)).rejects.toMatchObject({ code: 'IO' }); // a directory, not a file
    await writeFile(file, '{"entries": ');
    await expect(readManifestFile(file)).rejects.toMatchObject({ details: { file, field: '(root)' } });
  });

  it('an empty manifest serializes with a null metadata block', () => {
    expect(serializeManifest(Manifest.empty())).toBe('{\n  "entries": {},\n  "metadata": null\n}');
    expect(parseManifest('{"entries": {}, "metadata": null}').entries.size).toBe(0);
  });
});

describe('corrupt manifests → ValidationError naming the field', () => {
  const good = (): Record<string, unknown> => JSON.parse(fixture('worked-example-s2.json')) as Record<string, unknown>;
  const withEntry = (patch: (e: Record<string, unknown>) => void, key = 'input/a.csv'): string => {
    const m = good();
    const entries = m['entries'] as Record<string, Record<string, unknown>>;
    patch(entries[key] as Record<string, unknown>);
    return JSON.stringify(m);
  };

  it('bad JSON', () => {
    expectInvalid('{"entries": {', '(root)');
    expectInvalid('', '(root)');
    expectInvalid('[]', '(root)');
  });
  it('invalid UTF-8', () => {
    expect(() => parseManifest(new Uint8Array([0x7b, 0xff, 0x7d]), 'x.json')).toThrow(ValidationError);
  });
  it('wrong types', () => {
    expectInvalid(
      withEntry((e) => (e['filesize'] = '19')),
      'entries["input/a.csv"].filesize',
    );
    expectInvalid(
      withEntry((e) => (e['filesize'] = -1)),
      'entries["input/a.csv"].filesize',
    );
    expectInvalid(
      withEntry((e) => (e['type'] = 'dir')),
      /^entries\["input\/a.csv"\]/,
    );
    expectInvalid(
      withEntry((e) => delete e['user']),
      'entries["input/a.csv"].user',
    );
    const m = good();
    (m['metadata'] as Record<string, unknown>)['entry_count'] = 'four';
    expectInvalid(JSON.stringify(m), 'metadata.entry_count');
    expectInvalid('{"entries": []}', 'entries');
  });
  it('duplicate paths', () => {
    const e =
      '{"type": "file", "path": "input/a.csv", "user": "", "filesize": 0, "mtime": "2025-06-01T10:11:12-07:00", "hash": ""}';
    expectInvalid(`{"entries": {"input/a.csv": ${e}, "input/a.csv": ${e}}}`, 'entries["input/a.csv"]');
  });
  it('entry_count that does not match', () => {
    const m = good();
    (m['metadata'] as Record<string, unknown>)['entry_count'] = 5;
    expectInvalid(JSON.stringify(m), 'metadata.entry_count');
  });
  it('a bad entries_hash in the metadata', () => {
    const m = good();
    (m['metadata'] as Record<string, unknown>)['entries_hash'] = 'xyz';
    expectInvalid(JSON.stringify(m), 'metadata.entries_hash');
  });
  it("a key that differs from its entry's path", () => {
    expectInvalid(
      withEntry((e) => (e['path'] = 'input/other.csv')),
      'entries["input/a.csv"].path',
    );
    expectInvalid(
      withEntry((e) => (e['path'] = 'input/a.csv\u0000')),
      'entries["input/a.csv"].path',
    );
  });
});

/** Read, not refused: the entry is kept as it is and marked unusable (test/lenient.test.ts has the cases the original writes). */
describe('entries that break a writing rule → kept, marked unusable', () => {
  const good = (): Record<string, unknown> => JSON.parse(fixture('worked-example-s2.json')) as Record<string, unknown>;
  const withEntry = (patch: (e: Record<string, unknown>) => void, key = 'input/a.csv'): string => {
    const m = good();
    const entries = m['entries'] as Record<string, Record<string, unknown>>;
    patch(entries[key] as Record<string, unknown>);
    return JSON.stringify(m);
  };
  const reason = (text: string, key: string): string | null => {
    const m = parseManifest(text, 'last-sync.json');
    const e = m.entries.get(key);
    expect(e, key).toBeDefined();
    for (const [k, other] of m.entries) if (k !== key) expect(unusableReason(other), k).toBeNull();
    return unusableReason(e!);
  };

  it('bad hash and timestamp formats', () => {
    expect(
      reason(
        withEntry((e) => (e['hash'] = '1D812414F9AEE671')),
        'input/a.csv',
      ),
    ).toMatch(/^hash "1D812414F9AEE671" is not 16 lowercase hex digits/);
    expect(
      reason(
        withEntry((e) => (e['hash'] = 'd812414f9aee671')),
        'input/a.csv',
      ),
    ).toMatch(/hash/);
    expect(
      reason(
        withEntry((e) => (e['mtime'] = '2025-06-01 10:11:12')),
        'input/a.csv',
      ),
    ).toMatch(/^mtime "2025-06-01 10:11:12" is not an ISO 8601 timestamp/);
  });
  it('unsafe paths and link targets', () => {
    const entry = (p: string): string =>
      JSON.stringify({
        entries: {
          [p]: { type: 'file', path: p, user: '', filesize: 0, mtime: '2025-06-01T10:11:12-07:00', hash: '' },
        },
      });
    for (const p of [
      '../etc/passwd',
      '/etc/passwd',
      'input/../x',
      'input//x',
      'input/a\\b',
      'C:',
      'C:/',
      'input/x\u0000',
      'input/soft\u00adhyphen',
      'input/\ufeffbom',
      'input/con.txt',
      'input/cafe\u0301',
      '',
      `input/${'a/'.repeat(2100)}x`,
    ]) {
      expect(reason(entry(p), p), JSON.stringify(p)).toMatch(/^refused name: /);
    }
    expect(
      reason(
        withEntry((e) => (e['reference'] = '../../etc/passwd'), 'output/latest.csv'),
        'output/latest.csv',
      ),
    ).toMatch(/^refused link target "\.\.\/\.\.\/etc\/passwd": symlink target escapes the project/);
    expect(
      reason(
        withEntry((e) => (e['reference'] = '/etc/passwd'), 'output/latest.csv'),
        'output/latest.csv',
      ),
    ).toMatch(/absolute symlink target/);
  });
});

describe('timestamps', () => {
  it('records a file mtime as the original does: rounded to microseconds half-even, then whole seconds', () => {
    const s = 1_000_000; // a whole second, in ms (small, so the test values are exact in a double)
    expect(recordedMtimeMs(s + 999.9997)).toBe(s + 1000); // .9999997 s rounds up to the next second (flooring did not)
    expect(recordedMtimeMs(s + 999.9994)).toBe(s); // .9999994 s stays
    expect(recordedMtimeMs(s + 999.9995)).toBe(s + 1000); // half: 999999.5 µs → even 1000000
    expect(recordedMtimeMs(s + 0.0005)).toBe(s); // half: 0.5 µs → even 0
    expect(recordedMtimeMs(s + 500)).toBe(s);
    expect(recordedMtimeMs(-1.0000004)).toBe(-1000); // before 1970: -0.0010000004 s is in the second that starts at -1 s
  });
  it('formats in America/Los_Angeles with a numeric offset by default', () => {
    expect(formatTimestamp(new Date('2025-06-01T17:11:12.999Z'))).toBe('2025-06-01T10:11:12-07:00');
    expect(formatTimestamp(new Date('2025-01-15T16:00:00Z'))).toBe('2025-01-15T08:00:00-08:00');
    expect(formatTimestamp(new Date('2025-06-01T17:11:12Z'), 'UTC')).toBe('2025-06-01T17:11:12+00:00');
    expect(formatTimestamp(new Date('2025-06-01T17:11:12Z'), 'Asia/Kolkata')).toBe('2025-06-01T22:41:12+05:30');
    expect(formatTimestamp(new Date('2025-06-01T00:30:00Z'), 'America/Los_Angeles')).toBe('2025-05-31T17:30:00-07:00');
  });
  it('matches Intl for any instant and zone, across DST transitions', () => {
    const zones = [
      'America/Los_Angeles',
      'Europe/Berlin',
      'Australia/Lord_Howe',
      'Asia/Kathmandu',
      'UTC',
      'America/St_Johns',
    ];
    const ref = (ms: number, tz: string): string => {
      const name =
        new Intl.DateTimeFormat('en-US', { timeZone: tz, timeZoneName: 'longOffset' })
          .formatToParts(new Date(ms))
          .find((p) => p.type === 'timeZoneName')?.value ?? '';
      const off = name === 'GMT' ? '+00:00' : name.slice(3);
      return off;
    };
    fc.assert(
      fc.property(
        fc.integer({ min: Date.UTC(1990, 0, 1), max: Date.UTC(2040, 0, 1) }),
        fc.constantFrom(...zones),
        (ms, tz) => {
          const s = formatTimestamp(new Date(ms), tz);
          expect(s.slice(19)).toBe(ref(ms, tz));
          expect(parseTimestamp(s).getTime()).toBe(Math.floor(ms / 1000) * 1000);
        },
      ),
      { numRuns: 3000 },
    );
    // a transition off the quarter hour: St. John's sprang forward at 00:01 local (03:31 UTC) until 2011
    expect(formatTimestamp(new Date('2010-03-14T03:30:59Z'), 'America/St_Johns')).toBe('2010-03-14T00:00:59-03:30');
    expect(formatTimestamp(new Date('2010-03-14T03:31:00Z'), 'America/St_Johns')).toBe('2010-03-14T01:01:00-02:30');
    // the second before and after the 2025 spring-forward in Los Angeles (10:00 UTC)
    expect(formatTimestamp(new Date('2025-03-09T09:59:59Z'))).toBe('2025-03-09T01:59:59-08:00');
    expect(formatTimestamp(new Date('2025-03-09T10:00:00Z'))).toBe('2025-03-09T03:00:00-07:00');
  });

  it('parses to instants; strings differing only by zone compare equal', () => {
    expect(parseTimestamp('2025-06-01T10:11:12-07:00').getTime()).toBe(
      parseTimestamp('2025-06-01T17:11:12+00:00').getTime(),
    );
    expect(() => parseTimestamp('yesterday')).toThrow(ValidationError);
  });
});

describe('archive', () => {
  it('LZ4 frame round trip; garbage → ValidationError', () => {
    const json = fixture('worked-example-s2.json');
    const b = compressArchive(json);
    expect(b.readUInt32LE(0)).toBe(0x184d2204); // LZ4 frame magic
    expect(decompressArchive(b)).toBe(json);
    expect(() => decompressArchive(Buffer.from('not lz4'), 's1-sync.json.lz4')).toThrow(ValidationError);
  });
});
