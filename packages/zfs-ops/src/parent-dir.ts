import { ZfsOperationError } from '@dsg/contracts';
import { isMountPath } from './operations.js';
import type { Zfs } from './zfs.js';

/**
 * The directory of the parent dataset P, where the lock files and parked
 * content live: P's mountpoint as ZFS reports it (mounted or not: its
 * children's inherited mountpoints are below it either way), else the
 * configured one when ZFS gives no path (`none`, `legacy`) or P does not
 * exist. Any other zfs failure is thrown: guessing a lock file could let
 * two writers in. `fromZfs` is false only when P did not exist.
 */
export async function parentDir(
  zfs: Zfs,
  parent: string,
  configured: string,
): Promise<{ dir: string; fromZfs: boolean }> {
  let reported: string;
  try {
    reported = (await zfs.mountInfo(parent)).mountpoint;
  } catch (e) {
    if (e instanceof ZfsOperationError && /does not exist/.test(e.stderr ?? ''))
      return { dir: configured, fromZfs: false };
    throw e;
  }
  return { dir: isMountPath(reported) ? reported : configured, fromZfs: true };
}
