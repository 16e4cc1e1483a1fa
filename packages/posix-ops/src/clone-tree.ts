import { constants } from 'node:fs';
import { copyFile, link, lstat, mkdir, open, readdir, readlink, symlink, utimes } from 'node:fs/promises';
import path from 'node:path';
import { forEachLimited } from '@dsg/contracts';
import { errno } from './fs-util.js';

export interface CloneStats {
  files: number;
  links: number;
  dirs: number;
  /** files that could not be hard-linked and were copied (reflink where the filesystem can) */
  copied: number;
}

export interface CloneOptions {
  /** Replaceable for tests of the fallback; defaults to fs.link. */
  linkFile?: (existing: string, created: string) => Promise<void>;
}

/** link() refusals that mean "this filesystem or file cannot be linked here", not a real failure. */
const LINK_REFUSED = new Set(['EXDEV', 'EPERM', 'EMLINK', 'ENOTSUP', 'EOPNOTSUPP']);

/**
 * Make `dst` (an existing empty directory) a copy of the tree `src` in which every regular file is a hard
 * link to the same inode (no data copied). Directories are new (so the work
 * area can change them) and symlinks are re-created (link() on a symlink
 * follows it on some systems). When link() is refused, the file is copied
 * with FICLONE (a reflink where supported, else copy_file_range) and fsynced.
 */
export async function cloneTree(src: string, dst: string, opts: CloneOptions = {}): Promise<CloneStats> {
  const linkFile = opts.linkFile ?? link;
  const stats: CloneStats = { files: 0, links: 0, dirs: 0, copied: 0 };
  const queue: [string, string][] = [[src, dst]];
  for (let i = 0; i < queue.length; i++) {
    const [from, to] = queue[i]!;
    const entries = await readdir(from, { withFileTypes: true });
    await forEachLimited(entries, 32, async (ent) => {
      const a = path.join(from, ent.name);
      const b = path.join(to, ent.name);
      if (ent.isDirectory()) {
        await mkdir(b, { mode: 0o777 }); // the umask decides (see DIR_MODE)
        stats.dirs++;
        queue.push([a, b]);
      } else if (ent.isSymbolicLink()) {
        await symlink(await readlink(a), b);
        stats.links++;
      } else if (ent.isFile()) {
        stats.files++;
        try {
          await linkFile(a, b);
        } catch (e) {
          if (!LINK_REFUSED.has(errno(e) ?? '')) throw e;
          await copyInto(a, b);
          stats.copied++;
        }
      }
      // sockets, fifos, devices: never written by dsg, not carried forward
    });
  }
  return stats;
}

async function copyInto(a: string, b: string): Promise<void> {
  await copyFile(a, b, constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE);
  const st = await lstat(a);
  // seconds as a float: closer to the source's nanoseconds than a Date's milliseconds
  await utimes(b, st.atimeMs / 1000, st.mtimeMs / 1000);
  const fh = await open(b, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
