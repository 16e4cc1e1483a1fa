import { lstat } from 'node:fs/promises';
import path from 'node:path';
import type { ProvenDirs } from './beneath.js';
import { ValidationError } from './errors.js';

/**
 * Confinement check for a repository-relative path received from anywhere
 * (wire, manifest, CLI): POSIX separators, no absolute path, no empty, `.`
 * or `..` component, no NUL or backslash. Throws ValidationError naming the
 * path. This is the gate every backend and the agent pass paths through.
 */
export function assertSafeRelativePath(relPath: string): void {
  const bad = (why: string): never => {
    throw new ValidationError(
      `refused path ${JSON.stringify(relPath.length > 200 ? relPath.slice(0, 200) + '…' : relPath)}: ${why}`,
      {
        path: relPath.slice(0, 4096),
      },
    );
  };
  if (typeof relPath !== 'string' || relPath.length === 0) bad('empty');
  if (relPath.length > 4096) bad('longer than 4096 characters');
  if (relPath.includes('\0')) bad('contains NUL');
  if (relPath.includes('\\')) bad('contains a backslash');
  if (relPath.startsWith('/')) bad('absolute');
  if (/^[A-Za-z]:(\/|$)/.test(relPath)) bad('a drive path');
  for (const c of relPath.split('/')) {
    if (c === '') bad('empty component');
    if (c === '.' || c === '..') bad(`"${c}" component`);
  }
}

/** NAME_MAX on Linux, macOS and the BSDs: the longest file name, in bytes. */
export const NAME_MAX = 255;

/**
 * Where a READ or a WRITE of `rel` under `root` may go: git's "beyond a
 * symbolic link" rule, the one confinement of every path dsg opens. Every
 * existing parent component is lstat'ed and must be a real directory: not a
 * symlink, even one pointing inside (a link is data; `link/x` is somewhere
 * other than where the manifest says, and a link chain can point anywhere). Missing parents are fine (the caller makes
 * them, and must call this again after making them: a racing writer may have
 * planted a link in between). The final component is not followed here.
 *
 * With `proven` (only inside a shared hold of the Mutex it was made with:
 * see ProvenDirs), a parent proved since the last exclusive holder is not
 * lstat'ed again, and each parent found a real directory is added. The
 * path and its component lengths are checked either way.
 */
export async function resolveBeneath(root: string, rel: string, proven?: ProvenDirs): Promise<string> {
  assertSafeRelativePath(rel);
  const refuse = (why: string): never => {
    throw new ValidationError(
      `refused path ${JSON.stringify(rel.length > 200 ? rel.slice(0, 200) + '…' : rel)}: ${why}`,
      {
        path: rel.slice(0, 4096),
      },
    );
  };
  const parts = rel.split('/');
  for (const c of parts) if (Buffer.byteLength(c) > NAME_MAX) refuse(`a component is longer than ${NAME_MAX} bytes`);
  let dir = root;
  for (const c of parts.slice(0, -1)) {
    dir = path.join(dir, c);
    if (proven?.has(dir)) continue;
    let st;
    try {
      st = await lstat(dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') break;
      throw e;
    }
    if (st.isSymbolicLink())
      refuse(
        `parent ${JSON.stringify(path.relative(root, dir))} is a symlink (nothing is read or written beyond a symbolic link)`,
      );
    if (!st.isDirectory()) refuse(`parent ${JSON.stringify(path.relative(root, dir))} is not a directory`);
    proven?.add(dir);
  }
  return path.join(root, rel);
}
