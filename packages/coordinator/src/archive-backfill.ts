import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { archivePath } from '@dsg/contracts';
import {
  decompressArchive,
  parseManifest,
  type Manifest,
  type ManifestMetadata,
  type SyncMessages,
} from '@dsg/manifest';

/**
 * A snapshot's archive from this working copy's `.dsg/archive/`, taken only
 * when its metadata is the very snapshot the repository records (same
 * snapshot_hash): the original HRDAG/dsg never uploads archives, so its
 * repositories' history before dsg's first sync lives in working copies.
 * A damaged archive throws.
 */
export async function localArchive(
  root: string,
  sid: string,
  recorded: Pick<ManifestMetadata, 'snapshot_hash'>,
): Promise<{ bytes: Buffer; manifest: Manifest } | null> {
  const file = path.join(root, archivePath(sid));
  const bytes = await readFile(file).catch(() => null);
  if (!bytes) return null;
  const manifest = parseManifest(decompressArchive(bytes, file), file);
  return manifest.metadata?.snapshot_id === sid && manifest.metadata.snapshot_hash === recorded.snapshot_hash
    ? { bytes, manifest }
    : null;
}

/**
 * The archives of earlier snapshots that this working copy holds, for a
 * repository last written by the original: without these a clone's
 * `log`/`blame`/`validate-chain` would stop at the first missing one.
 * `skip` are ids written anyway.
 */
export async function archivesToBackfill(
  root: string,
  messages: SyncMessages,
  skip: ReadonlySet<string>,
): Promise<[string, Buffer][]> {
  const out: [string, Buffer][] = [];
  for (const [sid, recorded] of Object.entries(messages.snapshots)) {
    if (skip.has(sid)) continue;
    // a damaged local copy is not history: the repository simply keeps lacking it
    const a = await localArchive(root, sid, recorded).catch(() => null);
    if (a) out.push([archivePath(sid), a.bytes]);
  }
  return out;
}
