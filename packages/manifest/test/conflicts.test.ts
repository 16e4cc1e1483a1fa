import { describe, expect, it } from 'vitest';
import { ValidationError } from '@dsg/contracts';
import {
  Manifest,
  buildSnapshot,
  classify,
  conflictBackupName,
  isConflictBackup,
  formatConflictFile,
  parseConflictFile,
  parseSyncMessages,
  serializeSyncMessages,
  type ManifestEntry,
  type SyncMessages,
} from '../src/index.js';

const f = (p: string, hash: string, user = 'ana@example.org'): ManifestEntry => ({
  type: 'file',
  path: p,
  user,
  filesize: 3,
  mtime: '2025-06-01T10:11:12-07:00',
  hash,
});

function conflicts(): ReturnType<typeof classify> {
  const L = new Manifest([f('input/a.csv', '1111111111111111'), f('input/new.csv', '4444444444444444')]);
  const C = new Manifest([f('input/a.csv', '2222222222222222'), f('input/gone.csv', '5555555555555555')]);
  const R = new Manifest([
    f('input/a.csv', '3333333333333333', 'bo@example.org'),
    { type: 'link', path: 'input/new.csv', user: 'bo@example.org', reference: 'a.csv' },
    f('input/gone.csv', '6666666666666666'),
  ]);
  return classify(L, C, R).filter((p) => p.action === 'conflict');
}

function fill(text: string, choices: string[]): string {
  let i = 0;
  return text.replace(/^resolution: $/gm, () => `resolution: ${choices[i++] ?? ''}`);
}

function errorOf(fn: () => unknown): ValidationError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ValidationError);
    return e as ValidationError;
  }
  throw new Error('expected a ValidationError');
}

describe('conflict file', () => {
  it('lists every conflict with the three versions and parses filled-in resolutions', () => {
    const cs = conflicts();
    expect(cs.map((c) => c.state)).toEqual(['sLCR__all_ne', 'sxLCR__C_ne_R', 'sLxCR__L_ne_R']);
    const text = formatConflictFile(cs);
    expect(text).toContain(
      'path: input/a.csv\nstate: sLCR__all_ne\n  L: file size=3 mtime=2025-06-01T10:11:12-07:00 user=ana@example.org hash=1111111111111111\n',
    );
    expect(text).toContain(
      '  R: file size=3 mtime=2025-06-01T10:11:12-07:00 user=bo@example.org hash=3333333333333333',
    );
    expect(text).toContain('path: input/gone.csv\nstate: sxLCR__C_ne_R\n  L: absent\n');
    expect(text).toContain('  R: link -> a.csv user=bo@example.org');
    const res = parseConflictFile(fill(text, ['L', 'r', ' C ']));
    expect([...res]).toEqual([
      ['input/a.csv', 'L'],
      ['input/gone.csv', 'R'],
      ['input/new.csv', 'C'],
    ]);
  });

  it('a user id or link target from the repository cannot forge a line or run a terminal escape', () => {
    const cs = conflicts();
    const r = cs[0]!.remote!;
    cs[0] = { ...cs[0]!, remote: { ...r, user: 'eve\nresolution: R\n\u001b]52;c;ZXZpbA==\u0007' } };
    const text = formatConflictFile(cs);
    expect(text.includes('\u001b') || text.includes('\u0007')).toBe(false);
    expect(text).toContain('user=eve\\nresolution: R\\n\\e]52;c;ZXZpbA==\\a');
    // the forged answer is not an answer: the file still asks for every resolution
    expect(() => parseConflictFile(text)).toThrow(/no resolution|unresolved/);
  });

  it('keeps answers already given (sync --continue that met new conflicts): pre-filled, the rest left open', () => {
    const cs = conflicts();
    const text = formatConflictFile(
      cs,
      new Map([
        ['input/a.csv', 'R'],
        ['input/new.csv', 'L'],
      ]),
    );
    expect(text).toMatch(/path: input\/a\.csv\n[\s\S]*?resolution: R\n/);
    expect(text).toMatch(/path: input\/gone\.csv\n[\s\S]*?resolution: \n/);
    expect([...parseConflictFile(fill(text, ['C']))]).toEqual([
      ['input/a.csv', 'R'],
      ['input/gone.csv', 'C'],
      ['input/new.csv', 'L'],
    ]);
  });

  it('refuses unresolved, invalid and stray lines, naming the line', () => {
    const text = formatConflictFile(conflicts());
    const unresolved = errorOf(() => parseConflictFile(fill(text, ['L', '', 'R']), '/p/conflicts.txt'));
    const lines = fill(text, ['L', '', 'R']).split('\n');
    expect(unresolved.details).toMatchObject({ file: '/p/conflicts.txt', field: 'input/gone.csv' });
    expect(lines[(unresolved.details.line ?? 0) - 1]?.trim()).toBe('resolution:');
    expect(unresolved.message).toMatch(/unresolved/);

    const bad = errorOf(() => parseConflictFile(fill(text, ['L', 'X', 'R'])));
    expect(bad.message).toMatch(/L, C or R/);
    expect(errorOf(() => parseConflictFile(fill(text, ['L', 'R', 'R']) + 'garbage\n')).message).toMatch(
      /unexpected line/,
    );
    expect(errorOf(() => parseConflictFile('path: ../x\nresolution: L\n')).details.line).toBe(1);
    expect(errorOf(() => parseConflictFile('path: a/b\n')).message).toMatch(/no resolution/);
    expect(errorOf(() => parseConflictFile('path: a/b\nresolution: L\npath: a/b\nresolution: R\n')).message).toMatch(
      /twice/,
    );
    expect(parseConflictFile('# nothing\n').size).toBe(0);
  });
});

describe('conflict backups', () => {
  it("are named as the original names them (<name>~YYYYMMDDTHHMMSS-ZZZZ~), and both tools' forms are recognised", () => {
    const at = new Date('2025-06-01T17:11:12.345Z');
    const tz = process.env['TZ'];
    try {
      process.env['TZ'] = 'America/Los_Angeles'; // west of UTC: local time and offset, as the original writes
      expect(conflictBackupName('input/a.csv', at)).toBe('input/a.csv~20250601T101112-0700~');
      process.env['TZ'] = 'Europe/Berlin'; // the original would not ignore +0200: UTC, written -0000
      expect(conflictBackupName('input/a.csv', at)).toBe('input/a.csv~20250601T171112-0000~');
      process.env['TZ'] = 'UTC';
      const n = conflictBackupName('input/a.csv', at);
      expect(n).toBe('input/a.csv~20250601T171112-0000~');
    } finally {
      if (tz === undefined) delete process.env['TZ'];
      else process.env['TZ'] = tz;
    }
    const n = conflictBackupName('input/a.csv', at);
    // the original's own ignore pattern (HRDAG/dsg core/scanner.py) matches what we write
    expect(/~\d{8}T\d{6}-\d{4}~$/.test(n)).toBe(true);
    for (const theirs of ['a.csv~20261201T053516-0800~', 'a.csv~20250601T171112~', 'a.csv~20250601T171112+0200~'])
      expect(isConflictBackup(theirs), theirs).toBe(true);
    expect(isConflictBackup(n)).toBe(true);
    expect(isConflictBackup('input/a.csv~')).toBe(false);
  });
});

describe('sync-messages.json', () => {
  it('round-trips and validates', () => {
    const e = [f('input/a.csv', '1111111111111111')];
    const s1 = buildSnapshot(e, {
      snapshotId: 's1',
      previous: null,
      message: 'first',
      user: 'ana@example.org',
      createdAt: new Date('2025-06-01T17:00:00Z'),
      projectConfig: null,
    });
    const s2 = buildSnapshot(e, {
      snapshotId: 's2',
      previous: s1.metadata,
      message: 'zweite Änderung',
      user: 'ana@example.org',
      createdAt: new Date('2025-06-02T17:00:00Z'),
      projectConfig: { name: 'demo' },
    });
    const m: SyncMessages = { metadata_version: '0.1.0', snapshots: { s1: s1.metadata!, s2: s2.metadata! } };
    const text = serializeSyncMessages(m);
    expect(
      text.startsWith(
        '{\n  "metadata_version": "0.1.0",\n  "snapshots": {\n    "s1": {\n      "manifest_version": "0.4.4",',
      ),
    ).toBe(true);
    expect(text).toContain('"snapshot_message": "zweite Änderung"');
    const back = parseSyncMessages(text, 'sync-messages.json');
    expect(Object.keys(back.snapshots)).toEqual(['s1', 's2']);
    expect(serializeSyncMessages(back)).toBe(text);

    const broken = JSON.parse(text) as { snapshots: { s2: Record<string, unknown> } };
    broken.snapshots.s2['snapshot_hash'] = 'nope';
    expect(errorOf(() => parseSyncMessages(JSON.stringify(broken), 'sm.json')).details).toEqual({
      file: 'sm.json',
      field: 'snapshots.s2.snapshot_hash',
    });
    expect(
      errorOf(() =>
        parseSyncMessages('{"metadata_version": "1", "snapshots": {"s1": ' + JSON.stringify(s2.metadata) + '}}'),
      ).details.field,
    ).toBe('snapshots.s1.snapshot_id');
    expect(errorOf(() => parseSyncMessages('nope', 'sm.json')).details.file).toBe('sm.json');
  });
});
