import { chmod, lstat, readdir } from 'node:fs/promises';
import path from 'node:path';
import { forEachLimited, fsyncDir } from '@dsg/contracts';
import { listDirs } from './fs-util.js';

/**
 * Make a finished work area durable and read-only before it becomes a
 * snapshot: every file that still has a write bit (the ones this transaction
 * wrote; linked files are already sealed) loses it, every directory is
 * fsynced (new entries and renames) and made a-w — except the top directory,
 * which is sealed after its rename (renaming a directory to a new parent
 * needs write permission on it, to update its `..` entry).
 * Files were fsynced when written, so they are not fsynced again.
 */
export async function sealTree(top: string): Promise<void> {
  const dirs = await listDirs(top);
  await forEachLimited(dirs, 16, async (dir) => {
    const entries = await readdir(dir, { withFileTypes: true });
    for (const ent of entries) {
      if (!ent.isFile()) continue;
      const p = path.join(dir, ent.name);
      const st = await lstat(p);
      if (st.mode & 0o222) await chmod(p, st.mode & 0o7555);
    }
    await fsyncDir(dir);
  });
  for (const dir of dirs.slice(1)) await sealDir(dir);
}

export async function sealDir(dir: string): Promise<void> {
  const st = await lstat(dir);
  await chmod(dir, st.mode & 0o7555);
}
