import { archivePath, LAST_SYNC, nextSnapshotId, SYNC_MESSAGES, type RemoteRepository } from '@dsg/contracts';
import {
  buildSnapshot,
  compressArchive,
  ByteSums,
  hashBytes,
  Manifest,
  mirrorOf,
  parseSyncMessages,
  serializeManifestBytes,
  serializeManifestChunks,
  serializeSyncMessages,
  SYNC_MESSAGES_VERSION,
  type ManifestEntry,
  type ManifestMetadata,
  type SyncMessages,
} from '@dsg/manifest';
import { archivesToBackfill } from './archive-backfill.js';
import type { SyncPlan } from './plan.js';
import { once, readAll, streamOfChunks } from './streams.js';
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
  const manifest = buildSnapshot(entries, {
    snapshotId,
    previous: plan.remote.metadata,
    message,
    user: project.user,
    createdAt: at,
    projectConfig: project.projectConfig,
    notes: plan.remoteExists ? 'sync' : 'init', // as the original marks them
    ...(project.timeZone ? { timeZone: project.timeZone } : {}),
  });
  const md = manifest.metadata!;
  const messages = plan.remoteExists
    ? await readSyncMessages(remote)
    : { metadata_version: SYNC_MESSAGES_VERSION, snapshots: {} };
  // The original's repositories keep a sync-messages.json one snapshot behind last-sync.json: fill in R's own block.
  const prev = plan.remote.metadata;
  const lastWrittenByOriginal = prev !== null && !(prev.snapshot_id in messages.snapshots);
  if (prev && lastWrittenByOriginal) messages.snapshots[prev.snapshot_id] = prev;
  messages.snapshots[snapshotId] = md;
  // The manifest is never whole in memory (100k entries: 23 MB, and each writer's copy of it): it is
  // serialized in pieces to the client's staging, its size and hashes taken on the way, then serialized
  // again to the repository, which verifies those bytes against that hash.
  const sums = new ByteSums();
  await clientFs.stageMeta(tx, metaRel(LAST_SYNC), sums.tap(serializeManifestChunks(manifest)));
  const { size, hash, sha256 } = sums.result();
  await remote.writeFile(tx, LAST_SYNC, streamOfChunks(serializeManifestChunks(manifest)), { hash, size });
  // the other files are small, one buffer each for both sides (R's archive made from R's bytes as read)
  const meta: [string, Buffer][] = [[SYNC_MESSAGES, Buffer.from(serializeSyncMessages(messages), 'utf8')]];
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
  // the mirror is made once the commit is done (when the planning's and the writes' garbage has been
  // collected, rather than on top of it); until then only the manifest's map is kept
  return { snapshotId, metadata: md, mirror: () => mirrorOf(manifest, sha256) };
}

/**
 * R's archive entry for the next snapshot (null when R has no snapshot),
 * made from R's bytes as the repository holds them; it takes R's bytes off
 * the plan. Made before the transfers: the archive is ~3 MB where R's bytes
 * are 23 MB (100k entries), and those are not held through the transfers and
 * the commit. Only the new snapshot needs it (a client-only apply and a
 * clone take R's bytes as they are, and do not call this).
 */
export async function takeRemoteArchive(plan: SyncPlan): Promise<Buffer | null> {
  const source = plan.remoteManifestBytes;
  // taken off the plan: R as downloaded (a teammate synced) is a buffer the plan would hold to the end
  plan.remoteManifestBytes = null;
  return plan.remoteSnapshotId && source ? compressArchive(await source.read()) : null;
}

/** The client takes R as it is (a client-only apply): last-sync.json is R's bytes, sync-messages.json the repository's. */
export async function stageRemoteMetadata(run: SyncRun, plan: SyncPlan): Promise<void> {
  const { clientFs, remote, tx } = run;
  const bytes = plan.remoteManifestBytes
    ? await plan.remoteManifestBytes.read()
    : serializeManifestBytes(Manifest.empty());
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
