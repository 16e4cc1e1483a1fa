import { describe, expect, it } from 'vitest';
import { Manifest, type ManifestEntry } from '@dsg/manifest';
import type { Transfer } from '../src/resolve.js';
import { localSources, PACK_BYTES, PACK_FILE_MAX, PACK_FILES, packTransfers, routeUploads } from '../src/routes.js';

const file = (path: string, hash: string, filesize = 10): ManifestEntry => ({
  type: 'file',
  path,
  user: 'u',
  filesize,
  mtime: '2026-01-01T00:00:00-08:00',
  hash,
});
const link = (path: string, reference: string): ManifestEntry => ({ type: 'link', path, user: 'u', reference });
const up = (e: ManifestEntry): Transfer => ({ path: e.path, entry: e, source: { from: 'local' } });

describe('routeUploads', () => {
  it('copies what R holds elsewhere, sends each other content once, copies its twins after; links and empty files are sent', () => {
    const remote = new Manifest([file('in/old/a', 'aa'), file('in/old/b', 'bb'), file('in/same', 'ss')]);
    const uploads = [
      up(file('in/new/a', 'aa')),
      up(file('in/new/b', 'bb')),
      up(file('in/c1', 'cc')),
      up(file('in/c2', 'cc')),
      up(file('in/empty', 'ee', 0)),
      up(link('in/l', 'c1')),
      up(file('in/same', 'ss')), // its own path: nothing to copy from
    ];
    const r = routeUploads(uploads, remote);
    expect(r.fromRepository.map((x) => [x.transfer.path, x.from])).toEqual([
      ['in/new/a', 'in/old/a'],
      ['in/new/b', 'in/old/b'],
    ]);
    expect(r.send.map((t) => t.path)).toEqual(['in/c1', 'in/empty', 'in/l', 'in/same']);
    expect(r.fromSent.map((x) => [x.transfer.path, x.from])).toEqual([['in/c2', 'in/c1']]);
    expect(r.fromParked).toEqual([]);
  });

  it('places parked content (an interrupted sync uploaded it) instead of sending it; its twins copy from it', () => {
    const remote = new Manifest([file('in/old', 'aa')]);
    const uploads = [
      up(file('in/p1', 'pp')),
      up(file('in/p2', 'pp')),
      up(file('in/new', 'aa')),
      up(file('in/q', 'qq')),
    ];
    const r = routeUploads(uploads, remote, new Set(['pp', 'aa']));
    expect(r.fromRepository.map((x) => x.transfer.path)).toEqual(['in/new']); // the repository first
    expect(r.fromParked.map((t) => t.path)).toEqual(['in/p1']);
    expect(r.send.map((t) => t.path)).toEqual(['in/q']);
    expect(r.fromSent.map((x) => [x.transfer.path, x.from])).toEqual([['in/p2', 'in/p1']]);
  });
});

describe('localSources', () => {
  it('finds a local file with the same content under another name; none for links, empty files or no match', () => {
    const local = new Manifest([file('in/a', 'aa'), file('in/z', 'zz', 0)]);
    const d1 = up(file('in/moved/a', 'aa'));
    const d2 = up(file('in/b', 'bb'));
    const d3 = up(file('in/empty', 'zz', 0));
    const d4 = up(link('in/l', 'a'));
    const m = localSources([d1, d2, d3, d4], local);
    expect([...m.entries()].map(([t, p]) => [t.path, p])).toEqual([['in/moved/a', 'in/a']]);
  });
});

describe('packTransfers', () => {
  it('packs small files up to PACK_FILES or PACK_BYTES in order; big files and links go alone', () => {
    const small = Array.from({ length: PACK_FILES + 3 }, (_, i) => up(file(`s${i}`, `h${i}`, 100)));
    const big = up(file('big', 'hb', PACK_FILE_MAX + 1));
    const edge = up(file('edge', 'he', PACK_FILE_MAX));
    const l = up(link('l', 's0'));
    const empty = up(file('empty', 'e0', 0));
    const { packs, single } = packTransfers([small[0]!, big, l, ...small.slice(1), edge, empty]);
    expect(single.map((t) => t.path)).toEqual(['big', 'l']);
    expect(packs.map((p) => p.length)).toEqual([PACK_FILES, 5]);
    expect(packs.flat().map((t) => t.path)).toEqual([...small.map((t) => t.path), 'edge', 'empty']);
  });

  it('never mixes sources in a pack (the head and an old snapshot are two requests)', () => {
    const head = up(file('a', 'ha', 5));
    const old = { ...up(file('b', 'hb', 5)), source: { from: 'snapshot', snapshotId: 's3' } } as Transfer;
    const head2 = up(file('c', 'hc', 5));
    const { packs } = packTransfers([head, old, head2]);
    expect(packs.map((p) => p.map((t) => t.path))).toEqual([['a', 'c'], ['b']]);
  });

  it('closes a pack before it would pass PACK_BYTES', () => {
    const n = Math.floor(PACK_BYTES / PACK_FILE_MAX);
    const files = Array.from({ length: n + 1 }, (_, i) => up(file(`f${i}`, `h${i}`, PACK_FILE_MAX)));
    const { packs } = packTransfers(files);
    expect(packs.map((p) => p.length)).toEqual([n, 1]);
    for (const p of packs)
      expect(p.reduce((b, t) => b + (t.entry.type === 'file' ? t.entry.filesize : 0), 0)).toBeLessThanOrEqual(
        PACK_BYTES,
      );
  });
});
