/**
 * A file's identity as its inode and times tell it, and git's racy-clean
 * rule for trusting them: what lets a derived cache (the last sync's mirror,
 * the walk record) stand for a file it was made from without reading it.
 * Any rewrite — a sync, the original dsg, an editor — gives the file another
 * inode or ctime; a change within a coarse timestamp tick of the moment the
 * identity was taken could keep its times, so an identity counts only when
 * the file had last changed well before that moment.
 */
import { statSync } from 'node:fs';

export interface SourceIdentity {
  dev: bigint;
  ino: bigint;
  size: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
}

/** The identity of `file` now; null when it is not a regular file (or cannot be stat'ed). */
export function identityOf(file: string): SourceIdentity | null {
  const st = statSync(file, { bigint: true, throwIfNoEntry: false });
  if (!st?.isFile()) return null;
  return { dev: st.dev, ino: st.ino, size: st.size, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs };
}

export const sameIdentity = (a: SourceIdentity, b: SourceIdentity): boolean =>
  a.dev === b.dev && a.ino === b.ino && a.size === b.size && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs;

/** Whether `id`, seen at `atNs`, last changed long enough before to be told from a later change by its times. */
export const settled = (id: SourceIdentity, atNs: bigint, racyMs: number): boolean => {
  const racy = BigInt(racyMs) * 1_000_000n;
  return id.ctimeNs + racy <= atNs && id.mtimeNs + racy <= atNs;
};

export const nowNs = (): bigint => BigInt(Date.now()) * 1_000_000n;
