import { describe, expect, it } from 'vitest';
import {
  archivePath,
  compareSnapshotIds,
  isSnapshotId,
  manifestMetadataOf,
  nextSnapshotId,
  parseSnapshotId,
  snapshotIdOf,
  snapshotNumber,
  ValidationError,
} from '../src/index.js';

/** The cases on which the copies of this rule disagreed (wire: up to 10 digits; engine: any; CLI: s0). */
describe('snapshot ids: one rule', () => {
  it.each([
    ['s1', 1],
    ['s9', 9],
    ['s10', 10],
    ['s999999999', 999_999_999],
    ['s1234567890', null], // ten digits: passed the wire check, then refused by both backends
    ['s0', null], // the CLI's log/blame ordering took it
    ['s01', null],
    ['S1', null],
    ['s', null],
    ['s-1', null],
    ['s1 ', null],
    ['s1\n', null],
    ['1', null],
    ['s١', null], // a non-ASCII digit
    [1, null],
    [null, null],
  ] as const)('%j → %s', (id, n) => {
    expect(snapshotNumber(id)).toBe(n);
    expect(isSnapshotId(id)).toBe(n !== null);
    if (n === null) expect(() => parseSnapshotId(id)).toThrow(ValidationError);
    else expect(parseSnapshotId(id)).toBe(id);
  });

  it('next, of, and order', () => {
    expect(nextSnapshotId(null)).toBe('s1');
    expect(nextSnapshotId('s9')).toBe('s10');
    expect(() => nextSnapshotId('s999999999')).toThrow(ValidationError);
    expect(() => nextSnapshotId('x')).toThrow(/not a snapshot id/);
    expect(snapshotIdOf(42)).toBe('s42');
    expect(() => snapshotIdOf(0)).toThrow(ValidationError);
    expect(() => snapshotIdOf(1.5)).toThrow(ValidationError);
    expect(['s10', 'x', 's2', 's1'].sort(compareSnapshotIds)).toEqual(['s1', 's2', 's10', 'x']);
  });
});

describe('manifestMetadataOf', () => {
  it('returns the metadata block of a manifest and null for anything else', () => {
    expect(manifestMetadataOf({ entries: {}, metadata: { snapshot_id: 's3' } })).toEqual({ snapshot_id: 's3' });
    for (const v of [null, 'x', [], {}, { metadata: null }, { metadata: [] }, { metadata: 'm' }])
      expect(manifestMetadataOf(v)).toBeNull();
  });
});

describe('archivePath', () => {
  it('builds the path of an id and refuses anything that is not one (ids come from repository content)', () => {
    expect(archivePath('s12')).toBe('.dsg/archive/s12-sync.json.lz4');
    for (const bad of ['../x', 's1/../../y', 's0', '', 'S1']) expect(() => archivePath(bad)).toThrow(ValidationError);
  });
});
