import {
  archivePath,
  compareSnapshotIds,
  LAST_SYNC,
  NotFoundError,
  SYNC_MESSAGES,
  type RemoteFilesystem,
} from '@dsg/contracts';
import {
  decompressArchive,
  entriesEqual,
  parseManifest,
  parseSyncMessages,
  type Manifest,
  type ManifestEntry,
  type ManifestMetadata,
  type SyncMessages,
} from '@dsg/manifest';
import { localArchive } from './archive-backfill.js';
import { readAll } from './streams.js';

/*
 * The repository's history as the metadata files the sync engine writes
 * (repository-metadata.ts) record it, read back through the remote: the
 * reader lives next to its writer.
 */

export async function readRemoteBytes(
  remote: Pick<RemoteFilesystem, 'readFile'>,
  relPath: string,
): Promise<Buffer | null> {
  const s = await remote.readFile(relPath);
  return s ? readAll(s) : null;
}

export interface SnapshotRecord {
  snapshotId: string;
  metadata: ManifestMetadata;
  /** null when the manifest of that snapshot is not available (archive missing) */
  manifest: Manifest | null;
}

export class History {
  constructor(
    readonly messages: SyncMessages,
    /** oldest first */
    readonly snapshots: SnapshotRecord[],
  ) {}

  get head(): SnapshotRecord | null {
    return this.snapshots[this.snapshots.length - 1] ?? null;
  }

  get(sid: string): SnapshotRecord {
    const r = this.snapshots.find((s) => s.snapshotId === sid);
    if (!r) {
      throw new NotFoundError(
        `snapshot ${sid} does not exist (the repository has ${this.snapshots.map((s) => s.snapshotId).join(', ') || 'no snapshots'})`,
        {
          recoveryHint: '`dsg log` lists the snapshots.',
        },
      );
    }
    return r;
  }
}

/**
 * sync-messages.json + every manifest (head: last-sync.json; earlier:
 * archive/sN-sync.json.lz4 in the repository, else in `localRoot`'s
 * `.dsg/archive/` when it is the same snapshot).
 */
export async function readHistory(
  remote: Pick<RemoteFilesystem, 'readFile'>,
  options: { localRoot?: string } = {},
): Promise<History> {
  const msgBytes = await readRemoteBytes(remote, SYNC_MESSAGES);
  if (!msgBytes) {
    throw new NotFoundError('the repository has no .dsg/sync-messages.json (no snapshot yet?)', {
      recoveryHint: 'Run `dsg init` to create the repository, or check the repository name.',
    });
  }
  const messages = parseSyncMessages(msgBytes.toString('utf8'), SYNC_MESSAGES);
  const ids = Object.keys(messages.snapshots).sort(compareSnapshotIds);
  const snapshots: SnapshotRecord[] = [];
  const b = await readRemoteBytes(remote, LAST_SYNC);
  const headManifest: Manifest | null = b ? parseManifest(b, LAST_SYNC) : null;
  // The original uploads the client's PREVIOUS sync-messages.json: its repositories'
  // list lags one snapshot behind last-sync.json. The head's own metadata completes it.
  const head = headManifest?.metadata ?? null;
  const lagging = head !== null && !(head.snapshot_id in messages.snapshots);
  const records: Record<string, ManifestMetadata> = lagging
    ? { ...messages.snapshots, [head.snapshot_id]: head }
    : messages.snapshots;
  if (lagging) ids.push(head.snapshot_id);
  const headId = head?.snapshot_id ?? ids.at(-1);
  for (const sid of ids) {
    let manifest: Manifest | null = null;
    if (sid === headId) manifest = headManifest;
    else {
      const a = await readRemoteBytes(remote, archivePath(sid));
      manifest = a
        ? parseManifest(decompressArchive(a, archivePath(sid)), archivePath(sid))
        : options.localRoot
          ? ((await localArchive(options.localRoot, sid, records[sid]!))?.manifest ?? null)
          : null;
    }
    snapshots.push({ snapshotId: sid, metadata: records[sid]!, manifest });
  }
  return new History(messages, snapshots);
}

export type Change = 'added' | 'changed' | 'removed';

/** What changed between two manifests, path by path. */
export function diffManifests(prev: Manifest | null, cur: Manifest): Map<string, Change> {
  const out = new Map<string, Change>();
  const before = prev?.entries ?? new Map<string, ManifestEntry>();
  for (const [p, e] of cur.entries) {
    const b = before.get(p);
    if (!b) out.set(p, 'added');
    // the sync engine's equality (hash, else size + mtime INSTANT): log and
    // blame must not call a file changed that sync calls equal
    else if (!entriesEqual(b, e)) out.set(p, 'changed');
  }
  for (const p of before.keys()) if (!cur.entries.has(p)) out.set(p, 'removed');
  return out;
}
