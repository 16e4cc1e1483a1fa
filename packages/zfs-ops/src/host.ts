import path from 'node:path';
import { DsgError, type HasherFactory, type RepositoryHost, type RepositorySummary } from '@dsg/contracts';
import { assertDatasetName, assertRepositoryName } from './names.js';
import type { Logger } from './operations.js';
import { parentDir } from './parent-dir.js';
import { listZfsRepositories, ZfsRemoteFilesystem } from './remote-fs.js';
import type { ZfsRunner } from './runner.js';
import { repositorySummaries } from './summaries.js';
import { Zfs, type BusyRetry } from './zfs.js';

export interface ZfsHostOptions {
  /** the parent dataset P; repositories are P/<name> */
  parent: string;
  /** where P is configured to be mounted: a default only (see zfsHost) */
  mountpoint: string;
  hasher: HasherFactory;
  /** default: `zfs` run directly; `createZfsRunner({ sudo: true })` for `sudo -n zfs` */
  runner?: ZfsRunner;
  retry?: BusyRetry;
  log?: Logger;
}

export interface ZfsHost extends RepositoryHost {
  readonly parent: string;
  /** the configured mountpoint of P (resolved) */
  readonly mountpoint: string;
  open(name: string): ZfsRemoteFilesystem;
  lockFile(name: string): Promise<string>;
  /** The directory the lock files are in: where ZFS mounts P, or the configured mountpoint when ZFS gives no path. */
  lockDir(): Promise<string>;
  /** The repositories with their newest `@sN` and replica marker, from one zfs call (repositorySummaries). */
  summaries(): Promise<RepositorySummary[]>;
}

/** The lock file's name, beside the repository in P's directory (unchanged since the first release: old agents look for it there). */
export function zfsLockFileName(name: string): string {
  assertRepositoryName(name);
  return `.${name}.dsg-lock`;
}

/**
 * The ZFS repositories under one parent dataset P: dsg's own and the
 * original dsg's legacy datasets (ZfsRemoteFilesystem tells them apart).
 *
 * The lock file is `<dir of P>/.<name>.dsg-lock`, where the directory is
 * P's mountpoint as ZFS reports it (`zfs get mountpoint`), mounted or not:
 * its children's inherited mountpoints are below it either way, and every
 * agent, whatever mountpoint its client configured, names the same file.
 * The configured mountpoint is used only when ZFS gives no path (`none`,
 * `legacy`) or P does not exist (nothing to sync then). Any other failure
 * of `zfs` is thrown: guessing a lock file could let two writers in.
 * ZFS is asked once per host (an agent's session, one CLI command; its
 * repositories' parked content shares the answer): P's mountpoint is the
 * admin's and does not move under a running session. A P that did not
 * exist is asked again.
 */
export function zfsHost(options: ZfsHostOptions): ZfsHost {
  assertDatasetName(options.parent);
  if (!options.mountpoint || !path.isAbsolute(options.mountpoint)) {
    throw new DsgError('ZFS_CONFIG', `mountpoint must be absolute: ${JSON.stringify(String(options.mountpoint))}`, {
      recoveryHint: 'Pass the directory where the parent dataset is mounted.',
    });
  }
  const parent = options.parent;
  const mountpoint = path.resolve(options.mountpoint);
  const zfs = new Zfs({
    ...(options.runner ? { runner: options.runner } : {}),
    ...(options.retry ? { retry: options.retry } : {}),
  });
  const extra = {
    ...(options.runner ? { runner: options.runner } : {}),
    ...(options.retry ? { retry: options.retry } : {}),
    ...(options.log ? { log: options.log } : {}),
  };

  let known: string | undefined;
  const lockDir = async (): Promise<string> => {
    if (known !== undefined) return known;
    const { dir, fromZfs } = await parentDir(zfs, parent, mountpoint);
    if (fromZfs) known = dir;
    return dir;
  };

  return {
    parent,
    mountpoint,
    open: (name) =>
      new ZfsRemoteFilesystem({ parent, repo: name, mountpoint, hasher: options.hasher, parentDir: lockDir, ...extra }),
    lockDir,
    lockFile: async (name) => {
      const file = zfsLockFileName(name);
      return path.join(await lockDir(), file);
    },
    list: () => listZfsRepositories({ parent, mountpoint, ...(options.runner ? { runner: options.runner } : {}) }),
    summaries: () => repositorySummaries({ parent, ...(options.runner ? { runner: options.runner } : {}) }),
  };
}
