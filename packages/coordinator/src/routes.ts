import type { Manifest, ManifestEntry } from '@dsg/manifest';
import type { Transfer } from './resolve.js';

/** A transfer whose content the receiving side already holds at `from`: copied there, not sent. */
export interface Reuse {
  transfer: Transfer;
  from: string;
}

/**
 * How a transaction's uploads reach the repository with the least content on
 * the wire, in the order they must run:
 * 1. `fromRepository`: content the head snapshot already holds at another path
 *    (a rename, a copy, a revert), copied inside the work area before any
 *    upload or delete can change that path;
 * 2. `send`: every link, and the first file of each content the repository
 *    lacks (empty files too: a copy would cost the same round trip);
 * 3. `fromSent`: further files of a content sent in step 2, copied from it.
 * `remote` is R, the head this plan was made against: the work area starts as
 * it. Each copy is verified by hash on the server; one that is refused is sent.
 */
export function routeUploads(
  uploads: readonly Transfer[],
  remote: Manifest,
  parked: ReadonlySet<string> = new Set(),
): { fromRepository: Reuse[]; fromParked: Transfer[]; send: Transfer[]; fromSent: Reuse[] } {
  const inRepository = byHash(remote.entries.values());
  const sent = new Map<string, string>();
  const out = {
    fromRepository: [] as Reuse[],
    fromParked: [] as Transfer[],
    send: [] as Transfer[],
    fromSent: [] as Reuse[],
  };
  for (const t of uploads) {
    const e = t.entry;
    if (e.type !== 'file' || !e.hash || e.filesize === 0) {
      out.send.push(t);
      continue;
    }
    const there = inRepository.get(e.hash);
    const earlier = sent.get(e.hash);
    if (there !== undefined && there !== t.path) out.fromRepository.push({ transfer: t, from: there });
    else if (earlier !== undefined) out.fromSent.push({ transfer: t, from: earlier });
    else {
      sent.set(e.hash, t.path);
      (parked.has(e.hash) ? out.fromParked : out.send).push(t);
    }
  }
  return out;
}

/**
 * For each download, a local file that already holds its content (L, as
 * scanned: a file moved or copied in the repository is copied locally, not
 * downloaded), or none. Staging verifies the hash, so a file changed since
 * the scan is downloaded after all.
 */
export function localSources(downloads: readonly Transfer[], local: Manifest): Map<Transfer, string> {
  const here = byHash(local.entries.values());
  const out = new Map<Transfer, string>();
  for (const t of downloads) {
    const e = t.entry;
    if (e.type !== 'file' || !e.hash || e.filesize === 0) continue;
    const from = here.get(e.hash);
    if (from !== undefined && from !== t.path) out.set(t, from);
  }
  return out;
}

/** The first path (in manifest order) of each file content. */
function byHash(entries: Iterable<ManifestEntry>): Map<string, string> {
  const m = new Map<string, string>();
  for (const e of entries) if (e.type === 'file' && e.hash && !m.has(e.hash)) m.set(e.hash, e.path);
  return m;
}

/** A file at most this big travels in a pack with others (a bigger one is its own upload). */
export const PACK_FILE_MAX = 256 * 1024;
/** A pack closes at this many bytes or files (several packs stay in flight: the agent writes one pack's files in order). */
export const PACK_BYTES = 1 << 20;
export const PACK_FILES = 32;

/**
 * Transfers grouped for the wire: small files (content, not links) in packs
 * of up to PACK_FILES / PACK_BYTES, each pack one request (`writeFiles` up,
 * `readFiles` down) from one source; everything else alone. Order within a
 * pack is the order of `sends`.
 */
export function packTransfers(sends: readonly Transfer[]): { packs: Transfer[][]; single: Transfer[] } {
  const packs: Transfer[][] = [];
  const single: Transfer[] = [];
  const open = new Map<string, { files: Transfer[]; bytes: number }>(); // one pack under way per source
  for (const t of sends) {
    const e = t.entry;
    if (e.type !== 'file' || e.filesize > PACK_FILE_MAX) {
      single.push(t);
      continue;
    }
    const source = t.source.from === 'snapshot' ? `snapshot ${t.source.snapshotId}` : t.source.from;
    let p = open.get(source);
    if (p && (p.files.length >= PACK_FILES || p.bytes + e.filesize > PACK_BYTES)) {
      packs.push(p.files);
      p = undefined;
    }
    if (!p) open.set(source, (p = { files: [], bytes: 0 }));
    p.files.push(t);
    p.bytes += e.filesize;
  }
  for (const p of open.values()) packs.push(p.files);
  return { packs, single };
}
