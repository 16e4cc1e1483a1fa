/**
 * A working copy's last sync must be a snapshot of the repository's own
 * history before status or sync compares against it. HRDAG/dsg 0.4.4 numbers
 * each new snapshot from the syncing client's own sync-messages.json, so two
 * working copies can each write an "s3" (its conflict-backup fixture has
 * both); a repository restored from an older copy loses snapshots a working
 * copy already has. Compared by id alone, the repository's other s3 looks like
 * changes made after this copy's last sync: its files would be downloaded over
 * this copy's (L = C, so no backup), and the versions only this copy holds —
 * in no snapshot the repository keeps — would be gone.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { LAST_SYNC, snapshotNumber, SYNC_MESSAGES, ValidationError, type RemoteFilesystem } from '@dsg/contracts';
import { readRemoteBytes } from './history.js';

interface Meta {
  id: string;
  hash: string;
  by: string;
  at: string;
}

const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);

function metaOf(v: unknown): Meta | null {
  if (typeof v !== 'object' || v === null) return null;
  const m = v as Record<string, unknown>;
  const id = str(m['snapshot_id']);
  const hash = str(m['snapshot_hash']);
  if (!id || !hash) return null;
  return { id, hash, by: str(m['created_by']) ?? 'unknown user', at: str(m['created_at']) ?? 'unknown time' };
}

/** JSON, or null: a file that does not parse is the coordinator's to refuse, with its own message. */
function json(b: Buffer | null): unknown {
  if (!b) return null;
  try {
    return JSON.parse(b.toString('utf8')) as unknown;
  } catch {
    return null;
  }
}

const described = (m: Meta): string => `${m.id} (${m.by}, ${m.at}, snapshot hash ${m.hash})`;

const HINT =
  'Nothing was changed, here or in the repository. Keep this directory as it is: `dsg clone` the repository into a new directory, ' +
  'copy in the files from here you want to keep (compare them first), and `dsg sync` there.';

/**
 * Refuses (DIVERGED_HISTORY) when this working copy's last sync names a
 * snapshot the repository records differently, or one newer than its head.
 * Reads sync-messages.json and, only when that lacks the id (the original's
 * lags one snapshot behind its head), the repository's last-sync.json.
 * Cannot tell (no last sync, no snapshot hash, an id the repository lists
 * nowhere below its head): no refusal.
 */
export async function assertSameHistory(root: string, remote: Pick<RemoteFilesystem, 'readFile'>): Promise<void> {
  const local = metaOf(
    (json(await readFile(path.join(root, LAST_SYNC)).catch(() => null)) as { metadata?: unknown } | null)?.metadata,
  );
  if (!local) return;
  const messages = json(await readRemoteBytes(remote, SYNC_MESSAGES)) as { snapshots?: Record<string, unknown> } | null;
  let theirs = metaOf(messages?.snapshots?.[local.id]);
  let head: Meta | null = null;
  if (!theirs) {
    head = metaOf((json(await readRemoteBytes(remote, LAST_SYNC)) as { metadata?: unknown } | null)?.metadata);
    if (!head) return;
    if (head.id === local.id) theirs = head;
  }
  if (theirs) {
    if (theirs.hash === local.hash) return;
    throw new ValidationError(
      `this working copy's last sync is ${described(local)}, but the repository's ${theirs.id} is another snapshot: ${described(theirs)}. ` +
        "The two histories diverged (the original dsg numbers snapshots from each working copy's own history, so two copies can each write the same id)",
      { file: LAST_SYNC, field: 'metadata.snapshot_hash' },
      { code: 'DIVERGED_HISTORY', recoveryHint: HINT },
    );
  }
  if (head && (snapshotNumber(local.id) ?? 0) > (snapshotNumber(head.id) ?? 0)) {
    throw new ValidationError(
      `this working copy's last sync is ${described(local)}, but the repository's newest snapshot is ${described(head)}: it lost snapshots this copy has seen (restored from an older copy, or replaced)`,
      { file: LAST_SYNC, field: 'metadata.snapshot_id' },
      { code: 'DIVERGED_HISTORY', recoveryHint: HINT },
    );
  }
}
