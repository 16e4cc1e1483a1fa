import path from 'node:path';
import { assertSafeRelativePath, DSG_DIR, parkedName, ValidationError } from '@dsg/contracts';

/** Where the client keeps its transaction state, all under `<root>/.dsg/` (contracts' layout). */
export { DSG_DIR };

export interface Layout {
  root: string;
  dsg: string;
  stagingRoot: string;
  journalDir: string;
  backupRoot: string;
  /** verified downloads of interrupted transactions, by hash, for the next one to place (see stageParked) */
  parkedDir: string;
}

export function layout(root: string): Layout {
  const dsg = path.join(root, DSG_DIR);
  return {
    root,
    dsg,
    stagingRoot: path.join(dsg, 'staging'),
    journalDir: path.join(dsg, 'journal'),
    backupRoot: path.join(dsg, 'backup'),
    parkedDir: path.join(dsg, 'parked'),
  };
}

export const stagingDir = (l: Layout, tx: string): string => path.join(l.stagingRoot, tx);
export const journalFile = (l: Layout, tx: string): string => path.join(l.journalDir, `${tx}.json`);
export const backupDir = (l: Layout, tx: string): string => path.join(l.backupRoot, tx);
/** Parked content with this hash; throws unless the hash is hex (it names a file). */
export const parkedFile = (l: Layout, hash: string): string => path.join(l.parkedDir, parkedName(hash));

/**
 * A data path: safe, and never inside `.dsg/` (our transaction state) or
 * `.git/` (a hook or `core.fsmonitor` there runs code on the next `git`
 * command) at any depth, compared case-insensitively (`.DSG/` is `.dsg/` on
 * macOS and Windows).
 */
export function checkDataPath(p: string): void {
  assertSafeRelativePath(p);
  const guarded = p.split('/').find((c) => c.toLowerCase() === DSG_DIR || c.toLowerCase() === '.git');
  if (guarded !== undefined) {
    throw new ValidationError(`refused path ${JSON.stringify(p)}: data paths may not be inside ${guarded}/`, {
      path: p,
    });
  }
}

const RESERVED_META = new Set(['staging', 'backup', 'journal', 'parked']);

/** Where a metadata target (`.dsg/x`, from metaTarget) waits in a transaction's staging directory. */
export function stagedMetaPath(target: string): string {
  return `meta/${target.slice(DSG_DIR.length + 1)}`;
}

/**
 * A metadata path, relative to `.dsg/` (a leading `.dsg/` is accepted).
 * Returns the root-relative target, e.g. `.dsg/last-sync.json`. The
 * transaction's own directories are refused.
 */
export function metaTarget(p: string): string {
  const rel = p.startsWith(`${DSG_DIR}/`) ? p.slice(DSG_DIR.length + 1) : p;
  assertSafeRelativePath(rel);
  const first = rel.split('/')[0]!;
  if (RESERVED_META.has(first)) {
    throw new ValidationError(`refused metadata path ${JSON.stringify(p)}: .dsg/${first}/ belongs to transactions`, {
      path: p,
    });
  }
  return `${DSG_DIR}/${rel}`;
}
