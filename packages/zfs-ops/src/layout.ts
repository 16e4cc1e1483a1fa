import { constants, type BigIntStats } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { DsgError, NotFoundError, resolveBeneath } from '@dsg/contracts';

/**
 * The two layouts a ZFS repository `P/<repo>` can have. Both are the same
 * on disk: the dataset's mounted root IS the current tree, with
 * `.dsg/last-sync.json` (the head manifest) and `.dsg/sync-messages.json`
 * inside. They differ in their ZFS snapshots:
 *
 * - `dsg`: this package's own. Every commit is a snapshot `P/<repo>@sN`
 *   carrying dsg:* properties, so `@s1` … `@s<head>` all exist.
 * - `legacy`: made (or synced) by HRDAG/dsg 0.4.4, which snapshots only at
 *   init (`@s1`) and syncs in place. The head is whatever
 *   `.dsg/last-sync.json` says, and most snapshot ids of the history have
 *   no ZFS snapshot. Its dataset usually has an explicit (local)
 *   mountpoint, set by the original, anywhere on the host.
 *
 * Told apart by the one rule that holds for both and never depends on a
 * config: the head is `metadata.snapshot_id` of the live tree's
 * `.dsg/last-sync.json` (only a tree without a readable manifest there —
 * an empty dataset, a test tree — falls back to the highest `@sN`), and a
 * repository is legacy when some `sK`, K ≤ head, has no `@sK`. A legacy
 * repository stays legacy after dsg syncs it (dsg adds `@sN` for its own
 * commits, the gaps of the original's syncs stay), and a dsg repository
 * that the original synced becomes one — both are right: in both the live
 * tree, not the newest ZFS snapshot, is the head.
 */
export type Layout = 'dsg' | 'legacy';

import { LAST_SYNC, manifestMetadataOf, snapshotNumber, SYNC_MESSAGES } from '@dsg/contracts';

// contracts' one layout and snapshot-id rule, under the names this package exported
export { LAST_SYNC, snapshotNumber, SYNC_MESSAGES };

/** A manifest bigger than this is not read to find the head (the coordinator would refuse it too). */
const MAX_JSON_BYTES = 1 << 30;

export type Metadata = Record<string, unknown>;

const isRecord = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/**
 * A JSON file of the tree, opened: never through a symlink (no parent may
 * be one, the file is opened O_NOFOLLOW), regular files only. null when it
 * is absent; anything else (a link, a permission error) throws.
 */
async function openJson(root: string, rel: string): Promise<{ fh: FileHandle; st: BigIntStats } | null> {
  const full = await resolveBeneath(root, rel);
  let fh: FileHandle;
  try {
    fh = await open(full, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    if (code === 'ELOOP') throw layoutError(`${rel} in ${root} is a symlink`);
    throw e;
  }
  try {
    const st = await fh.stat({ bigint: true });
    if (!st.isFile()) throw layoutError(`${rel} in ${root} is not a regular file`);
    if (st.size > BigInt(MAX_JSON_BYTES)) throw layoutError(`${rel} in ${root} is larger than ${MAX_JSON_BYTES} bytes`);
    return { fh, st };
  } catch (e) {
    await fh.close();
    throw e;
  }
}

/** The parsed JSON of an opened file, or null when it is not JSON; closes it. */
async function parseJson(fh: FileHandle): Promise<unknown> {
  try {
    return JSON.parse(await fh.readFile('utf8')) as unknown;
  } catch {
    return null;
  } finally {
    await fh.close();
  }
}

function layoutError(why: string): DsgError {
  return new DsgError('CORRUPT', `repository layout damaged: ${why}`, {
    recoveryHint:
      'Inspect the repository by hand: its dataset root is the current tree, with .dsg/last-sync.json inside.',
  });
}

type Head = { id: string; n: number; metadata: Metadata } | null;

/**
 * What a session recorded of the live head file (PROP.headFile on the live
 * dataset): its identity (inode, size, mtime and ctime in ns) and the
 * snapshot id it names. A live file with the same identity is that very
 * file, unchanged — a rewrite, in place or by rename, moves its ctime or
 * inode, which no client sets — so its head is known without parsing a
 * manifest of tens of MB (every session asks for the layout; the parse cost
 * ~0.3 s of CPU at 100k entries). Recorded only for a file whose ctime is
 * HEAD_RACY_MS old: a rewrite within the same timestamp granule (zfs-fuse
 * keeps whole seconds) could keep every field. A commit makes a new dataset
 * generation, which does not inherit it.
 */
export interface HeadFile {
  stamp: string;
  id: string;
}

export const HEAD_RACY_MS = 2000;

const stampOf = (st: BigIntStats): string => `${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;

export const encodeHeadFile = (h: HeadFile): string => `${h.stamp}:${h.id}`;

/** PROP.headFile's value; null when it is not one (absent, another tool's, damaged). */
export function decodeHeadFile(value: string | undefined): HeadFile | null {
  const m = value === undefined ? null : /^(\d+:\d+:\d+:\d+):([^:]+)$/.exec(value);
  return m && snapshotNumber(m[2]) !== null ? { stamp: m[1]!, id: m[2]! } : null;
}

/**
 * Heads already parsed, by file and what fstat says of it: a manifest can
 * be tens of MB, and one sync asks for the head several times (exists,
 * listSnapshots). A rewritten last-sync.json is a new file (renamed into
 * place), so its inode, size or times differ.
 */
const heads = new Map<string, { stamp: string; head: Head }>();
const HEADS_KEPT = 32;

/** The head a tree's `.dsg/last-sync.json` names: its snapshot id and metadata block, or null (absent, not a manifest). */
export async function readHead(root: string): Promise<Head> {
  const f = await openJson(root, LAST_SYNC);
  return f ? headOf(root, f) : null;
}

/**
 * The head of the live tree: from `recorded` when the file is that one (no
 * parse, no metadata block), else as readHead. `record`: what to record now
 * (the file was parsed and is settled), or null. `racyMs`: how old its
 * ctime must be to be settled (HEAD_RACY_MS; tests choose theirs).
 */
export async function readLiveHead(
  root: string,
  recorded: HeadFile | null,
  racyMs = HEAD_RACY_MS,
  nowMs = Date.now(),
): Promise<{ head: { id: string; n: number; metadata: Metadata | null } | null; record: HeadFile | null }> {
  const f = await openJson(root, LAST_SYNC);
  if (!f) return { head: null, record: null };
  const stamp = stampOf(f.st);
  if (recorded && recorded.stamp === stamp) {
    await f.fh.close();
    return { head: { id: recorded.id, n: snapshotNumber(recorded.id)!, metadata: null }, record: null };
  }
  const settled = f.st.ctimeNs <= BigInt(nowMs - racyMs) * 1_000_000n;
  const head = await headOf(root, f);
  return { head, record: head && settled ? { stamp, id: head.id } : null };
}

async function headOf(root: string, f: { fh: FileHandle; st: BigIntStats }): Promise<Head> {
  const key = `${root}\0${LAST_SYNC}`;
  const stamp = `${f.st.dev}:${stampOf(f.st)}`;
  const known = heads.get(key);
  if (known?.stamp === stamp) {
    await f.fh.close();
    return known.head;
  }
  const v = await parseJson(f.fh);
  const md = manifestMetadataOf(v);
  const n = md ? snapshotNumber(md['snapshot_id']) : null;
  const head: Head = md && n !== null ? { id: `s${n}`, n, metadata: md } : null;
  heads.delete(key);
  heads.set(key, { stamp, head });
  if (heads.size > HEADS_KEPT) heads.delete(heads.keys().next().value!);
  return head;
}

/** The metadata blocks of `.dsg/sync-messages.json` by snapshot id; empty when absent or unreadable (it is only history). */
export async function readSyncMessages(root: string): Promise<Map<number, Metadata>> {
  const out = new Map<number, Metadata>();
  let v: unknown;
  try {
    const f = await openJson(root, SYNC_MESSAGES);
    v = f ? await parseJson(f.fh) : null;
  } catch {
    return out;
  }
  const snaps = isRecord(v) && isRecord(v['snapshots']) ? v['snapshots'] : {};
  for (const [id, md] of Object.entries(snaps)) {
    const n = snapshotNumber(id);
    if (n !== null && isRecord(md)) out.set(n, md);
  }
  return out;
}

/** A snapshot of a legacy repository's history that has no ZFS snapshot: a clear not-found, never a crash. */
export function noZfsSnapshot(snapshotId: string, dataset: string, more?: string): NotFoundError {
  const why = `snapshot ${snapshotId} has no ZFS snapshot in this repository (made by HRDAG/dsg, which snapshots only at init)`;
  return new NotFoundError(more ? `${why}; ${more}` : why, {
    recoveryHint: `In ${dataset} only @s1 (its init), the head (the live tree) and the snapshots dsg committed have files; the others are still in the history as manifests (dsg log, dsg blame).`,
  });
}
