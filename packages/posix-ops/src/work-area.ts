/**
 * What both posix backends (snapshot layout and the original's flat one)
 * need to write a transaction's files: the modes and the checks of an
 * incoming request. (Transaction ids and temp names: @dsg/contracts.)
 */
import { lstat } from 'node:fs/promises';
import { ValidationError } from '@dsg/contracts';
import { errno } from './fs-util.js';

/**
 * Modes of what a transaction creates, before the umask: the server's umask
 * decides (022: 0755/0644 as before; a team's 002: 0775/0664, so another
 * member of the group can run the next sync). A setgid repository directory
 * passes its group and setgid bit down by itself; sealing only removes
 * write bits, so both survive into snapshots.
 */
export const DIR_MODE = 0o777;
export const FILE_MODE = 0o666;

/** A file or link is never renamed over a directory (the tree would lose it). */
export async function refuseDirectory(full: string, rel: string): Promise<void> {
  try {
    if ((await lstat(full)).isDirectory()) {
      throw new ValidationError(`refused to replace directory ${JSON.stringify(rel)} with a file`, { path: rel });
    }
  } catch (e) {
    if (errno(e) !== 'ENOENT') throw e;
  }
}
