import { link, mkdir, readFile, readdir, rename, rm, unlink, stat } from 'node:fs/promises';
import path from 'node:path';
import {
  assertSafeRelativePath,
  faultPoint,
  forEachLimited,
  fsyncDir,
  isTransactionId,
  resolveBeneath,
  ValidationError,
  writeFileAtomic,
} from '@dsg/contracts';
import { backupDir, journalFile, stagingDir, type Layout } from './layout.js';
import { isEnoent, listFilesRecursive, lstatOrNull, pruneEmptyParents, renameInto } from './fs-util.js';

/**
 * One step of an apply. `target` is root-relative (data paths, or
 * `.dsg/<meta>` for metadata); `staged` is relative to the staging dir.
 */
export type JournalOp = { kind: 'put'; target: string; staged: string } | { kind: 'delete'; target: string };

/** `.dsg/journal/<tx>.json`: everything needed to finish or undo an apply after a crash. */
export interface Journal {
  journal_version: 1;
  transaction_id: string;
  /** the remote snapshot this apply belongs to; null for a client-only apply */
  remote_snapshot: string | null;
  ops: JournalOp[];
}

export async function writeJournal(l: Layout, j: Journal): Promise<void> {
  await mkdir(l.journalDir, { recursive: true });
  await writeFileAtomic(journalFile(l, j.transaction_id), JSON.stringify(j, null, 2) + '\n');
}

/** Parse and validate a journal; every path in it is checked before use. */
export function parseJournal(text: string, source: string): Journal {
  const fail = (field: string): never => {
    throw new ValidationError(`invalid journal ${source}: ${field}`, { file: source, field });
  };
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return fail('not JSON');
  }
  if (typeof raw !== 'object' || raw === null) return fail('not an object');
  const o = raw as Record<string, unknown>;
  if (o['journal_version'] !== 1) fail('journal_version');
  const tx = o['transaction_id'];
  if (typeof tx !== 'string' || !isTransactionId(tx)) return fail('transaction_id');
  const snap = o['remote_snapshot'];
  if (snap !== null && typeof snap !== 'string') fail('remote_snapshot');
  if (!Array.isArray(o['ops'])) return fail('ops');
  const ops: JournalOp[] = [];
  for (const item of o['ops'] as unknown[]) {
    const op = item as Record<string, unknown>;
    const target = op['target'];
    if (typeof target !== 'string') return fail('ops.target');
    assertSafeRelativePath(target);
    if (op['kind'] === 'put') {
      const staged = op['staged'];
      if (typeof staged !== 'string') return fail('ops.staged');
      assertSafeRelativePath(staged);
      ops.push({ kind: 'put', target, staged });
    } else if (op['kind'] === 'delete') {
      ops.push({ kind: 'delete', target });
    } else fail('ops.kind');
  }
  return { journal_version: 1, transaction_id: tx, remote_snapshot: snap as string | null, ops };
}

export async function readJournal(l: Layout, tx: string): Promise<Journal | null> {
  const file = journalFile(l, tx);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if (isEnoent(e)) return null;
    throw e;
  }
  return parseJournal(text, file);
}

/** Journals present, by transaction id (from file names). */
export async function listJournals(l: Layout): Promise<string[]> {
  try {
    return (await readdir(l.journalDir))
      .filter((n) => n.endsWith('.json'))
      .map((n) => n.slice(0, -'.json'.length))
      .filter(isTransactionId)
      .sort();
  } catch (e) {
    if (isEnoent(e)) return [];
    throw e;
  }
}

async function sameInode(a: string, b: string): Promise<boolean> {
  const [x, y] = await Promise.all([lstatOrNull(a), lstatOrNull(b)]);
  return x !== null && y !== null && x.ino === y.ino && x.dev === y.dev;
}

/**
 * Keep the user's current bytes at `target` reachable from the backup dir.
 * A hard link (same filesystem, O(1), no copy) lets the following rename
 * replace `target` atomically — at no moment is the path missing.
 */
async function ensureBackup(targetAbs: string, backupAbs: string): Promise<void> {
  if (await sameInode(targetAbs, backupAbs)) return;
  let dest = backupAbs;
  // A different file already sits at the backup name (redo after a user edit): keep both.
  for (let n = 1; (await lstatOrNull(dest)) !== null; n++) dest = `${backupAbs}.${n}`;
  await mkdir(path.dirname(dest), { recursive: true });
  await link(targetAbs, dest);
}

/**
 * Roll forward: make every op true. Each step checks what is already done
 * (staged file gone = already renamed into place; target gone = already
 * deleted), so running it twice, or after a crash at any point, is safe.
 */
export async function applyJournal(l: Layout, j: Journal, concurrency = APPLY_CONCURRENCY): Promise<void> {
  const stage = stagingDir(l, j.transaction_id);
  const backup = backupDir(l, j.transaction_id);
  let n = 0;
  const applyOp = async (op: JournalOp): Promise<void> => {
    // Never through a symlinked parent (git's rule): a link the repository
    // planted as `input/g` must not carry a later `input/g/x` anywhere else.
    const targetAbs = await resolveBeneath(l.root, op.target);
    const backupAbs = path.join(backup, op.target);
    const st = await lstatOrNull(targetAbs);
    if (st?.isDirectory()) {
      throw new ValidationError(
        `cannot replace directory ${op.target} with a file`,
        { path: op.target },
        {
          recoveryHint: `Move the directory ${op.target} aside and run the command again.`,
        },
      );
    }
    if (op.kind === 'put') {
      const stagedAbs = path.join(stage, op.staged);
      if ((await lstatOrNull(stagedAbs)) === null) return; // already in place
      if (st) await ensureBackup(targetAbs, backupAbs);
      await mkdir(path.dirname(targetAbs), { recursive: true });
      // again after mkdir: a link put of this same apply may have landed on a parent meanwhile
      await resolveBeneath(l.root, op.target);
      await rename(stagedAbs, targetAbs);
    } else {
      if (!st) return; // already deleted
      if (!(await sameInode(targetAbs, backupAbs))) {
        let dest = backupAbs;
        for (let k = 1; (await lstatOrNull(dest)) !== null; k++) dest = `${backupAbs}.${k}`;
        await renameInto(targetAbs, dest);
      } else {
        await unlink(targetAbs);
      }
      await pruneEmptyParents(path.dirname(targetAbs), l.root);
    }
    if (++n === 1) faultPoint('client.commit.after-first-op');
  };
  // Deletes, then data puts (a deleted file may make room for a directory), each
  // group with a few renames in flight; metadata last and one by one.
  const isMeta = (op: JournalOp): boolean => op.target.startsWith('.dsg/');
  await forEachLimited(
    j.ops.filter((op) => !isMeta(op) && op.kind === 'delete'),
    concurrency,
    applyOp,
  );
  const dataPuts = j.ops.filter((op) => !isMeta(op) && op.kind === 'put');
  await forEachLimited(dataPuts, concurrency, applyOp);
  // the renames reach the disk before last-sync.json says they happened
  const dirs = [...new Set(dataPuts.map((op) => path.dirname(path.join(l.root, op.target))))];
  await forEachLimited(dirs, concurrency, (d) => fsyncDir(d));
  for (const op of j.ops.filter(isMeta)) await applyOp(op);
  faultPoint('client.commit.before-cleanup');
}

/** Renames in flight during an apply: the work is metadata syscalls waiting on the disk, not CPU. */
export const APPLY_CONCURRENCY = 8;

/**
 * Roll back: undo whatever part of the ops was done. An applied put's new
 * file goes back into staging (not deleted) before the backup is restored,
 * so a crash in the middle of this leaves a state this same function
 * understands. Errors are collected per op, never thrown.
 */
export async function undoJournal(l: Layout, j: Journal): Promise<{ name: string; error: string }[]> {
  const stage = stagingDir(l, j.transaction_id);
  const backup = backupDir(l, j.transaction_id);
  const leftovers: { name: string; error: string }[] = [];
  for (const op of [...j.ops].reverse()) {
    try {
      const targetAbs = await resolveBeneath(l.root, op.target);
      const backupAbs = path.join(backup, op.target);
      const hasBackup = (await lstatOrNull(backupAbs)) !== null;
      const hasTarget = (await lstatOrNull(targetAbs)) !== null;
      const applied = op.kind === 'put' ? (await lstatOrNull(path.join(stage, op.staged))) === null : !hasTarget;
      if (op.kind === 'put' && applied && hasTarget) {
        await renameInto(targetAbs, path.join(stage, op.staged)); // the new file, out of the way
        await pruneEmptyParents(path.dirname(targetAbs), l.root); // dirs the apply created
      }
      if (hasBackup) {
        if ((await lstatOrNull(targetAbs)) === null) await renameInto(backupAbs, targetAbs);
        else if (await sameInode(targetAbs, backupAbs)) await unlink(backupAbs);
        else leftovers.push({ name: backupAbs, error: `both ${op.target} and its backup exist and differ; kept both` });
      }
      faultPoint('client.rollback.after-op');
    } catch (e) {
      leftovers.push({ name: op.target, error: e instanceof Error ? e.message : String(e) });
    }
  }
  return leftovers;
}

/** Remove the backup dir if it holds no file any more (nothing of the user's in it). */
export async function dropEmptyBackup(l: Layout, tx: string): Promise<boolean> {
  const dir = backupDir(l, tx);
  if ((await listFilesRecursive(dir)).length > 0) return false;
  await rm(dir, { recursive: true, force: true });
  return true;
}

export async function dropJournal(l: Layout, tx: string): Promise<void> {
  try {
    await unlink(journalFile(l, tx));
    await fsyncDir(l.journalDir);
  } catch (e) {
    if (!isEnoent(e)) throw e;
  }
}

export async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}
