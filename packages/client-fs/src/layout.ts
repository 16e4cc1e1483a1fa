import path from 'node:path';
import { assertSafeRelativePath, ValidationError } from '@dsg/contracts';

/** Where the client keeps its transaction state, all under `<root>/.dsg/`. */
export const DSG_DIR = '.dsg';

export interface Layout {
  root: string;
  dsg: string;
  stagingRoot: string;
  journalDir: string;
  backupRoot: string;
}

export function layout(root: string): Layout {
  const dsg = path.join(root, DSG_DIR);
  return {
    root,
    dsg,
    stagingRoot: path.join(dsg, 'staging'),
    journalDir: path.join(dsg, 'journal'),
    backupRoot: path.join(dsg, 'backup'),
  };
}

export const stagingDir = (l: Layout, tx: string): string => path.join(l.stagingRoot, tx);
export const journalFile = (l: Layout, tx: string): string => path.join(l.journalDir, `${tx}.json`);
export const backupDir = (l: Layout, tx: string): string => path.join(l.backupRoot, tx);

/** A data path: safe, and never inside `.dsg/` (that tree is ours, not the user's data). */
export function checkDataPath(p: string): void {
  assertSafeRelativePath(p);
  if (p === DSG_DIR || p.startsWith(`${DSG_DIR}/`)) {
    throw new ValidationError(`refused path ${JSON.stringify(p)}: data paths may not be inside .dsg/`, { path: p });
  }
}

const RESERVED_META = new Set(['staging', 'backup', 'journal']);

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
    throw new ValidationError(`refused metadata path ${JSON.stringify(p)}: .dsg/${first}/ belongs to transactions`, { path: p });
  }
  return `${DSG_DIR}/${rel}`;
}

/**
 * A symlink target must be relative and stay inside the project, counting
 * levels from the link's DIRECTORY (manifest.md "Entries and equality").
 */
export function checkLinkTarget(linkPath: string, target: string): void {
  const bad = (why: string): never => {
    throw new ValidationError(`refused link ${JSON.stringify(linkPath)} -> ${JSON.stringify(target)}: ${why}`, { path: linkPath });
  };
  if (target.length === 0) bad('empty target');
  if (target.includes('\0')) bad('target contains NUL');
  if (target.startsWith('/')) bad('absolute target');
  const resolved = path.posix.normalize(path.posix.join(path.posix.dirname(linkPath), target));
  if (resolved === '..' || resolved.startsWith('../') || path.posix.isAbsolute(resolved)) bad('target climbs out of the project');
}
