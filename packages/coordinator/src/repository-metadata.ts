import { archivePath, LAST_SYNC, nextSnapshotId, SYNC_MESSAGES, type RemoteRepository } from '@dsg/contracts';
import {
  buildSnapshot,
  compressArchive,
  hashBytes,
  Manifest,
  mirrorDigest,
  mirrorOf,
  parseSyncMessages,
  serializeManifestBytes,
  serializeSyncMessages,
  SYNC_MESSAGES_VERSION,
  type ManifestEntry,
  type ManifestMetadata,
  type SyncMessages,
} from '@dsg/manifest';
import { archivesToBackfill } from './archive-backfill.js';
import type { SyncPlan } from './plan.js';
import { once, readAll } from './streams.js';
import { metaRel, type SyncRun } from './sync-run.js';

/*
 * The repository's metadata files (`.dsg/last-sync.json`, `sync-messages.json`,
 * `archive/`): written with every snapshot on both sides, and copied as the
 * repository has them by a client-only apply and a clone.
 */

async function readSyncMessages(remote: RemoteRepository): Promise<SyncMessages> {
  const s = await remote.readFile(SYNC_MESSAGES);
  if (!s) return { metadata_version: SYNC_MESSAGES_VERSION, snapshots: {} };
  return parseSyncMessages((await readAll(s)).toString('utf8'), `repository:${SYNC_MESSAGES}`);
}

/** The repository's newest committed snapshot (null: none). */
export async function headOf(remote: RemoteRepository): Promise<string | null> {
  if (!(await remote.exists())) return null;
  return (await remote.listSnapshots()).at(-1)?.snapshotId ?? null;
}

/**
 * The new snapshot's manifest as bytes and its metadata, and its mirror to
 * make once the commit is done (`mirror()`, null for a manifest the mirror
 * cannot reproduce): encoded then, when the planning's and the writes'
 * garbage has been collected, rather than on top of it (the peak of a
 * 100k-entry sync is this moment). Until then only the manifest's map is
 * kept, not the bytes.
 */
function snapshotBytes(
  entries: Iterable<ManifestEntry>,
  options: Parameters<typeof buildSnapshot>[1],
): { metadata: ManifestMetadata; bytes: Buffer; mirror: () => Buffer | null } {
  const manifest = buildSnapshot(entries, options);
  const bytes = serializeManifestBytes(manifest);
  const digest = mirrorDigest(bytes);
  return { metadata: manifest.metadata!, bytes, mirror: () => mirrorOf(manifest, digest) };
}

/**
 * The merged manifest, chained to R, and the metadata files of the new
 * snapshot, written to the repository's work area and staged on the client.
 */
export async function writeSnapshotMetadata(
  run: SyncRun,
  plan: SyncPlan,
  entries: Iterable<ManifestEntry>,
  at: Date,
  message: string,
  /** R's archive entry (takeRemoteArchive): compressed before the transfers, so R's bytes are not held through them */
  remoteArchive: Buffer | null,
): Promise<{ snapshotId: string; metadata: ManifestMetadata; mirror: () => Buffer | null }> {
  const { project, remote, clientFs, tx } = run;
  const snapshotId = nextSnapshotId(plan.remoteSnapshotId);
  const {
    metadata: md,
    bytes,
    mirror,
  } = snapshotBytes(entries, {
    snapshotId,
    previous: plan.remote.metadata,
    message,
    user: project.user,
    createdAt: at,
    projectConfig: project.projectConfig,
    notes: plan.remoteExists ? 'sync' : 'init', // as the original marks them
    ...(project.timeZone ? { timeZone: project.timeZone } : {}),
  });
  const messages = plan.remoteExists
    ? await readSyncMessages(remote)
    : { metadata_version: SYNC_MESSAGES_VERSION, snapshots: {} };
  // The original's repositories keep a sync-messages.json one snapshot behind last-sync.json: fill in R's own block.
  const prev = plan.remote.metadata;
  const lastWrittenByOriginal = prev !== null && !(prev.snapshot_id in messages.snapshots);
  if (prev && lastWrittenByOriginal) messages.snapshots[prev.snapshot_id] = prev;
  messages.snapshots[snapshotId] = md;
  // One buffer per file, written to the repository and staged on the client
  // alike; the manifest goes straight to bytes, and R's archive is made from
  // the bytes as read (a string of either would be another manifest-sized copy).
  const meta: [string, Buffer][] = [
    [LAST_SYNC, bytes],
    [SYNC_MESSAGES, Buffer.from(serializeSyncMessages(messages), 'utf8')],
  ];
  if (plan.remoteSnapshotId && remoteArchive) meta.push([archivePath(plan.remoteSnapshotId), remoteArchive]);
  for (const [p, content] of meta) {
    await remote.writeFile(tx, p, once(content), { hash: hashBytes(content), size: content.byteLength });
    await clientFs.stageMeta(tx, metaRel(p), content);
  }
  if (lastWrittenByOriginal) {
    // the original keeps archives only in working copies: give the repository this one's, for every clone
    const skip = new Set([snapshotId, ...(plan.remoteSnapshotId ? [plan.remoteSnapshotId] : [])]);
    for (const [p, content] of await archivesToBackfill(project.root, messages, skip)) {
      await remote.writeFile(tx, p, once(content), { hash: hashBytes(content), size: content.byteLength });
    }
  }
  return { snapshotId, metadata: md, mirror };
}

/**
 * R's archive entry for the next snapshot (null when R has no snapshot),
 * made from R's bytes as read; it takes R's bytes off the plan: for 100k
 * entries 23 MB that a sync held through its transfers and commit, where the
 * archive is ~3 MB. Only the new snapshot needs them (a client-only apply and
 * a clone take R's bytes as they are, and do not call this).
 */
export function takeRemoteArchive(plan: SyncPlan): Buffer | null {
  const bytes = plan.remoteManifestBytes;
  plan.remoteManifestBytes = null;
  return plan.remoteSnapshotId && bytes ? compressArchive(bytes) : null;
}

/** The client takes R as it is (a client-only apply): last-sync.json is R's bytes, sync-messages.json the repository's. */
export async function stageRemoteMetadata(run: SyncRun, plan: SyncPlan): Promise<void> {
  const { clientFs, remote, tx } = run;
  const bytes = plan.remoteManifestBytes ?? serializeManifestBytes(Manifest.empty());
  await clientFs.stageMeta(tx, metaRel(LAST_SYNC), bytes);
  const sm = await remote.readFile(SYNC_MESSAGES);
  if (sm) await clientFs.stageMeta(tx, metaRel(SYNC_MESSAGES), await readAll(sm));
}

/** A clone's history: sync-messages.json and every archive the repository holds for the snapshots it lists. */
export async function stageClonedHistory(run: SyncRun, plan: SyncPlan): Promise<void> {
  const { clientFs, remote, tx } = run;
  const sm = await remote.readFile(SYNC_MESSAGES);
  if (!sm) return;
  const smBytes = await readAll(sm);
  const messages = parseSyncMessages(smBytes.toString('utf8'), `repository:${SYNC_MESSAGES}`);
  await clientFs.stageMeta(tx, metaRel(SYNC_MESSAGES), smBytes);
  for (const id of Object.keys(messages.snapshots)) {
    if (id === plan.remoteSnapshotId) continue;
    const a = await remote.readFile(archivePath(id));
    if (a) await clientFs.stageMeta(tx, metaRel(archivePath(id)), await readAll(a));
  }
}
