import { stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';

/** Whether `dir` is the root of a mounted filesystem (another device than its parent). */
async function isMountPoint(dir: string): Promise<boolean> {
  try {
    const [a, b] = await Promise.all([stat(dir), stat(dirname(dir))]);
    return a.dev !== b.dev;
  } catch {
    return false;
  }
}

/**
 * What a repository path is, as the agent finds it on its own disk (protocol
 * 1.3 `detectRepository`): the mountpoint of a ZFS dataset `<pool>/<name>`,
 * a dsg posix repository (`snapshots` layout, or the original dsg's `flat`
 * tree), or neither (`type: null`). A clone by URL alone (`host:/path/name`)
 * then needs no `--repo-type zfs --pool DS`.
 */
export type DetectedRepository =
  | { type: 'zfs'; dataset: string; pool: string }
  | { type: 'posix'; layout: 'snapshots' | 'flat' }
  | { type: null; reason: string };

/** The checks one host can make; each returns null for "not this kind". */
export interface RepositoryProbes {
  /** the ZFS dataset whose mountpoint property is `dir` (null: none, or no ZFS here) */
  zfsDatasetAt(dir: string, options: { sudo: boolean }): Promise<string | null>;
  /** the dsg layout of the directory `dir` (null: not a dsg repository) */
  posixLayoutAt(dir: string): Promise<'snapshots' | 'flat' | null>;
}

/**
 * Detect the repository `name` under `root` (the agent's own root: its posix
 * root or its zfs mountpoint, never a path the client names). A dataset
 * counts only when it is `<pool>/<name>` — the name a zfs repository config
 * addresses it by.
 */
export async function detectRepositoryAt(
  root: string,
  name: string,
  probes: RepositoryProbes,
  options: { sudo?: boolean } = {},
): Promise<DetectedRepository> {
  const dir = resolve(root, name);
  // ZFS is asked only when it may answer: the path is a mount point, or no posix repository is there
  // (an unmounted dataset); a posix repository never costs a `zfs list`
  const mounted = await isMountPoint(dir);
  const layout = mounted ? null : await probes.posixLayoutAt(dir);
  if (layout !== null) return { type: 'posix', layout };
  const dataset = await probes.zfsDatasetAt(dir, { sudo: options.sudo === true });
  if (dataset !== null) {
    const cut = dataset.lastIndexOf('/');
    if (cut > 0 && dataset.slice(cut + 1) === name) return { type: 'zfs', dataset, pool: dataset.slice(0, cut) };
    return {
      type: null,
      reason: `${dir} is the mountpoint of the ZFS dataset ${dataset}, which is not named <pool>/${name}`,
    };
  }
  if (mounted) {
    const inside = await probes.posixLayoutAt(dir); // a posix repository on a filesystem of its own
    if (inside !== null) return { type: 'posix', layout: inside };
  }
  return { type: null, reason: `${dir} is neither a ZFS dataset's mountpoint nor a dsg repository` };
}
