/*
 * The backups an apply keeps: the user's bytes a sync replaced or deleted,
 * under `.dsg/backup/<transaction>/<path>` (see journal.ts). Listed, measured
 * and removed here, a whole transaction at a time, and only ever beneath
 * `.dsg/backup/`: a backup whose transaction still has a journal is never
 * removed (recovery may need it).
 */
import { lstat, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { isTransactionId, type CleanupReport } from '@dsg/contracts';
import { backupDir, layout } from './layout.js';
import { listJournals } from './journal.js';
import { isEnoent } from './fs-util.js';

/** One kept file. */
export interface KeptBackup {
  /** where it is, relative to the project root: `.dsg/backup/<transaction>/<original>` */
  path: string;
  /** the working-copy path it was (a second backup of one path in one transaction gets `.1`, `.2`, …) */
  original: string;
  /** the directory under `.dsg/backup/` it belongs to (a transaction id) */
  transactionId: string;
  /** when it was kept: the transaction's start (its id), else the directory's mtime; ISO 8601 UTC */
  time: string;
  size: number;
}

/** One `.dsg/backup/<transaction>/` directory. */
export interface BackupSet {
  transactionId: string;
  time: string;
  bytes: number;
  files: KeptBackup[];
  /** its transaction still has a journal: recovery may need it, so it is never removed */
  pending: boolean;
}

/** Start time of a transaction from its id (`20261125T101112123Z-…`). */
export function transactionTime(tx: string): number | null {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(\d{3})Z-/.exec(tx);
  if (!m) return null;
  return Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!, +m[7]!);
}

async function filesUnder(dir: string, rel = ''): Promise<{ rel: string; size: number }[]> {
  let ents;
  try {
    ents = await readdir(path.join(dir, rel), { withFileTypes: true });
  } catch (e) {
    if (isEnoent(e)) return [];
    throw e;
  }
  const out: { rel: string; size: number }[] = [];
  for (const ent of ents) {
    const r = rel ? `${rel}/${ent.name}` : ent.name;
    if (ent.isDirectory()) out.push(...(await filesUnder(dir, r)));
    else out.push({ rel: r, size: (await lstat(path.join(dir, r))).size });
  }
  return out;
}

/**
 * Every backup set under `.dsg/backup/`, oldest first (by time, then name).
 * `only`: just that transaction's set (empty when it kept nothing).
 */
export async function listBackups(root: string, only?: string): Promise<BackupSet[]> {
  const l = layout(path.resolve(root));
  if (only !== undefined && !isTransactionId(only)) return [];
  let names: string[];
  try {
    names = only === undefined ? await readdir(l.backupRoot) : [only];
  } catch (e) {
    if (isEnoent(e)) return [];
    throw e;
  }
  const journals = new Set(await listJournals(l));
  const sets: BackupSet[] = [];
  for (const name of names) {
    const dir = backupDir(l, name);
    let st;
    try {
      st = await lstat(dir);
    } catch (e) {
      if (isEnoent(e)) continue;
      throw e;
    }
    if (!st.isDirectory()) continue; // not ours: never listed, never removed
    const time = new Date(transactionTime(name) ?? st.mtimeMs).toISOString();
    const files = (await filesUnder(dir)).map((f) => ({
      path: path.posix.join('.dsg', 'backup', name, f.rel),
      original: f.rel,
      transactionId: name,
      time,
      size: f.size,
    }));
    if (files.length === 0 && only !== undefined) continue;
    sets.push({
      transactionId: name,
      time,
      bytes: files.reduce((n, f) => n + f.size, 0),
      files,
      pending: journals.has(name),
    });
  }
  return sets.sort((a, b) => a.time.localeCompare(b.time) || a.transactionId.localeCompare(b.transactionId));
}

export interface RemovedBackups extends CleanupReport {
  /** the sets removed (or that would be, under dryRun) */
  sets: BackupSet[];
  bytes: number;
}

/**
 * Remove backup sets: those older than `olderThanMs` (all when absent), then,
 * with `maxBytes`, the oldest of the rest until what remains is at most that
 * many bytes. Sets with a journal are kept and count towards the total.
 */
export async function removeBackups(
  root: string,
  o: { olderThanMs?: number; maxBytes?: number; now?: Date; dryRun?: boolean } = {},
): Promise<RemovedBackups> {
  const l = layout(path.resolve(root));
  const now = (o.now ?? new Date()).getTime();
  const sets = await listBackups(root);
  const chosen = new Set<BackupSet>();
  if (o.maxBytes === undefined || o.olderThanMs !== undefined) {
    for (const s of sets)
      if (!s.pending && (o.olderThanMs === undefined || now - Date.parse(s.time) >= o.olderThanMs)) chosen.add(s);
  }
  if (o.maxBytes !== undefined) {
    let total = sets.filter((s) => !chosen.has(s)).reduce((n, s) => n + s.bytes, 0);
    for (const s of sets) {
      if (total <= o.maxBytes) break;
      if (s.pending || chosen.has(s)) continue;
      chosen.add(s);
      total -= s.bytes;
    }
  }
  const report: RemovedBackups = { removed: [], leftovers: [], sets: [], bytes: 0 };
  for (const s of sets) {
    if (!chosen.has(s)) continue;
    const dir = backupDir(l, s.transactionId);
    try {
      if (!o.dryRun) await rm(dir, { recursive: true, force: true });
      report.removed.push(dir);
      report.sets.push(s);
      report.bytes += s.bytes;
    } catch (e) {
      report.leftovers.push({ name: dir, error: e instanceof Error ? e.message : String(e) });
    }
  }
  return report;
}
