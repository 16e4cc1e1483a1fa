import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { decompressArchive, parseManifest, type SyncMessages } from '@dsg/manifest';

/**
 * The archives of earlier snapshots that this working copy holds, for a
 * repository last written by the original HRDAG/dsg: it never uploads
 * archives (its working copies keep them), so without these a clone's
 * `log`/`blame`/`validate-chain` would stop at the first missing one. Each
 * is taken only when it is the very snapshot the repository records (its
 * metadata has the recorded snapshot_hash); `skip` are ids written anyway.
 */
export async function archivesToBackfill(root: string, messages: SyncMessages, skip: ReadonlySet<string>, archivePath: (sid: string) => string): Promise<[string, Buffer][]> {
  const out: [string, Buffer][] = [];
  for (const [sid, recorded] of Object.entries(messages.snapshots)) {
    if (skip.has(sid)) continue;
    const rel = archivePath(sid);
    const bytes = await readFile(path.join(root, rel)).catch(() => null);
    if (!bytes) continue;
    try {
      const m = parseManifest(decompressArchive(bytes, rel), rel);
      if (m.metadata?.snapshot_id === sid && m.metadata.snapshot_hash === recorded.snapshot_hash) out.push([rel, bytes]);
    } catch {
      // a damaged local copy is not history: the repository simply keeps lacking it
    }
  }
  return out;
}
