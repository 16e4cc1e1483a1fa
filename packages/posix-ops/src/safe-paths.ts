import { lstat } from 'node:fs/promises';
import path from 'node:path';
import { assertSafeRelativePath, resolveInside, ValidationError } from '@dsg/contracts';
import { errno } from './fs-util.js';

/** NAME_MAX on Linux, macOS and the BSDs. */
const NAME_MAX = 255;

function refuse(rel: string, why: string): never {
  const shown = rel.length > 200 ? rel.slice(0, 200) + '…' : rel;
  throw new ValidationError(`refused path ${JSON.stringify(shown)}: ${why}`, { path: rel.slice(0, 4096) });
}

/**
 * Resolve a repository-relative path inside `tree` (a work area or a
 * snapshot). Beyond the contracts check (no absolute, `..`, NUL, escape
 * through a symlink), NO parent component may be a symlink at all, even one
 * pointing inside: a link written by an earlier writeLink is data, and
 * writing `link/x` would put x somewhere other than where the manifest says.
 * Parents that are regular files are refused too. Missing parents are fine.
 */
export async function resolveInTree(tree: string, rel: string): Promise<string> {
  assertSafeRelativePath(rel);
  const parts = rel.split('/');
  for (const c of parts) if (Buffer.byteLength(c) > NAME_MAX) refuse(rel, `a component is longer than ${NAME_MAX} bytes`);
  const full = await resolveInside(tree, rel);
  let dir = tree;
  for (const c of parts.slice(0, -1)) {
    dir = path.join(dir, c);
    let st;
    try {
      st = await lstat(dir);
    } catch (e) {
      if (errno(e) === 'ENOENT') break;
      throw e;
    }
    if (st.isSymbolicLink()) refuse(rel, `parent ${JSON.stringify(path.relative(tree, dir))} is a symlink`);
    if (!st.isDirectory()) refuse(rel, `parent ${JSON.stringify(path.relative(tree, dir))} is not a directory`);
  }
  return full;
}

/**
 * A symlink target must be relative and stay inside the tree when resolved
 * from the link's own directory (so a snapshot never points outside itself).
 */
export function assertSafeLinkTarget(rel: string, target: string): void {
  if (typeof target !== 'string' || target.length === 0) refuse(rel, 'empty link target');
  if (target.length > 4096) refuse(rel, 'link target longer than 4096 characters');
  if (target.includes('\0')) refuse(rel, 'link target contains NUL');
  if (target.includes('\\')) refuse(rel, 'link target contains a backslash');
  if (path.posix.isAbsolute(target)) refuse(rel, 'link target is absolute');
  const resolved = path.posix.normalize(path.posix.join(path.posix.dirname(rel), target));
  if (resolved === '..' || resolved.startsWith('../')) refuse(rel, 'link target points outside the repository');
}
