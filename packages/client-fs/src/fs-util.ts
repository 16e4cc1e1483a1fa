import { lstat, mkdir, rename, readdir, rmdir } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import path from 'node:path';

/** lstat that answers null for a missing path instead of throwing. */
export async function lstatOrNull(p: string): Promise<Stats | null> {
  try {
    return await lstat(p);
  } catch (e) {
    // ENOTDIR: a parent is a file, so this path cannot exist either
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    throw e;
  }
}

export function isEnoent(e: unknown): boolean {
  return (e as NodeJS.ErrnoException | null)?.code === 'ENOENT';
}

/** Rename, creating the destination's parent directories first. */
export async function renameInto(from: string, to: string): Promise<void> {
  await mkdir(path.dirname(to), { recursive: true });
  await rename(from, to);
}

/** Remove empty directories from `dir` up to (not including) `stop`. */
export async function pruneEmptyParents(dir: string, stop: string): Promise<void> {
  let d = dir;
  while (d.startsWith(stop + path.sep) && d !== stop) {
    try {
      await rmdir(d);
    } catch {
      return; // not empty or gone: stop climbing
    }
    d = path.dirname(d);
  }
}

/** Every regular file or symlink under dir, relative to it (POSIX separators). */
export async function listFilesRecursive(dir: string): Promise<string[]> {
  const out: string[] = [];
  async function walk(d: string, rel: string): Promise<void> {
    let ents;
    try {
      ents = await readdir(d, { withFileTypes: true });
    } catch (e) {
      if (isEnoent(e)) return;
      throw e;
    }
    for (const ent of ents) {
      const r = rel ? `${rel}/${ent.name}` : ent.name;
      if (ent.isDirectory()) await walk(path.join(d, ent.name), r);
      else out.push(r);
    }
  }
  await walk(dir, '');
  return out.sort();
}
