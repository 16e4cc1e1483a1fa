// The history reader over a repository's metadata files. The remote is a map
// of files (the unit under test reads through RemoteFilesystem.readFile only).
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { ByteStream } from '@dsg/contracts';
import {
  buildSnapshot,
  compressArchive,
  serializeManifest,
  serializeSyncMessages,
  type ManifestEntry,
  type ManifestMetadata,
} from '@dsg/manifest';
import { diffManifests, readHistory } from '../src/index.js';

const entry = (p: string, hash: string): ManifestEntry => ({
  type: 'file',
  path: p,
  user: 'ana@example.org',
  filesize: 1,
  mtime: '2024-01-15T09:00:00-08:00',
  hash,
});

function chain(n: number): ReturnType<typeof buildSnapshot>[] {
  const out: ReturnType<typeof buildSnapshot>[] = [];
  for (let i = 1; i <= n; i++) {
    out.push(
      buildSnapshot([entry('input/a.csv', String(i).padStart(16, '0'))], {
        snapshotId: `s${i}`,
        previous: out.at(-1)?.metadata ?? null,
        message: `m${i}`,
        user: 'ana@example.org',
        createdAt: new Date(Date.UTC(2026, 0, i)),
        projectConfig: null,
      }),
    );
  }
  return out;
}

function remoteOf(files: Record<string, Buffer>): { readFile: (p: string) => Promise<ByteStream | null> } {
  const stream = (b: Buffer): ByteStream => Readable.from([new Uint8Array(b)]);
  return { readFile: (p) => Promise.resolve(p in files ? stream(files[p]!) : null) };
}

describe('readHistory', () => {
  it('completes a sync-messages.json that lags one snapshot behind last-sync.json (as the original uploads it)', async () => {
    const [s1, s2, s3] = chain(3);
    const messages: Record<string, ManifestMetadata> = { s1: s1!.metadata!, s2: s2!.metadata! }; // no s3: the original's lag
    const h = await readHistory(
      remoteOf({
        '.dsg/last-sync.json': Buffer.from(serializeManifest(s3!)),
        '.dsg/sync-messages.json': Buffer.from(
          serializeSyncMessages({ metadata_version: '0.4.4', snapshots: messages }),
        ),
        '.dsg/archive/s1-sync.json.lz4': compressArchive(serializeManifest(s1!)),
        // s2's archive missing, as in every repository the original wrote
      }),
    );
    expect(h.snapshots.map((s) => s.snapshotId)).toEqual(['s1', 's2', 's3']);
    expect(h.head?.snapshotId).toBe('s3');
    expect(h.head?.metadata.snapshot_message).toBe('m3');
    expect(h.head?.manifest?.entries.get('input/a.csv')?.type).toBe('file');
    expect(h.get('s2').manifest).toBeNull(); // reported as not available, not a failure
    expect(h.get('s1').manifest?.metadata?.snapshot_id).toBe('s1');
  });

  it('a complete list is read as it is', async () => {
    const [s1, s2] = chain(2);
    const h = await readHistory(
      remoteOf({
        '.dsg/last-sync.json': Buffer.from(serializeManifest(s2!)),
        '.dsg/sync-messages.json': Buffer.from(
          serializeSyncMessages({ metadata_version: '0.4.4', snapshots: { s1: s1!.metadata!, s2: s2!.metadata! } }),
        ),
        '.dsg/archive/s1-sync.json.lz4': compressArchive(serializeManifest(s1!)),
      }),
    );
    expect(h.snapshots.map((s) => [s.snapshotId, s.manifest !== null])).toEqual([
      ['s1', true],
      ['s2', true],
    ]);
  });
});

describe('diffManifests', () => {
  const file = (mtime: string, hash = ''): ManifestEntry => ({
    type: 'file',
    path: 'input/a.csv',
    user: 'u',
    filesize: 3,
    mtime,
    hash,
  });
  const manifestOf = (e: ManifestEntry) => ({ entries: new Map([[e.path, e]]) }) as Parameters<typeof diffManifests>[1];

  it('calls a file unchanged when sync does: same size and the same mtime INSTANT in another offset', () => {
    // no hashes: equality is size + mtime instant, as the sync engine compares
    const before = manifestOf(file('2024-01-02T03:04:05-08:00'));
    const after = manifestOf(file('2024-01-02T11:04:05+00:00'));
    expect(diffManifests(before, after).size).toBe(0);
  });

  it('a different instant or hash is a change; an added and a removed path are named', () => {
    expect(
      diffManifests(manifestOf(file('2024-01-02T03:04:05-08:00')), manifestOf(file('2024-01-02T03:04:06-08:00'))).get(
        'input/a.csv',
      ),
    ).toBe('changed');
    expect(
      diffManifests(manifestOf(file('t', 'aaaaaaaaaaaaaaaa')), manifestOf(file('t', 'bbbbbbbbbbbbbbbb'))).get(
        'input/a.csv',
      ),
    ).toBe('changed');
    expect(diffManifests(null, manifestOf(file('t'))).get('input/a.csv')).toBe('added');
    const other = { ...file('t'), path: 'input/b.csv' };
    expect(diffManifests(manifestOf(file('t')), manifestOf(other))).toEqual(
      new Map([
        ['input/b.csv', 'added'],
        ['input/a.csv', 'removed'],
      ]),
    );
  });
});
