import path from 'node:path';
import { ConfigError, validateRepositoryName, type HasherFactory, type RepositoryHost } from '@dsg/contracts';
import type { FlatRemoteFilesystem } from './flat-remote-filesystem.js';
import { listPosixAndFlatRepositories, openPosixRepository, posixLockFile } from './open-repository.js';
import type { PosixRemoteFilesystem } from './posix-remote-filesystem.js';
import { posixRepositorySummaries } from './summaries.js';

export interface PosixHostOptions {
  /** the directory holding the repositories (`<root>/<name>`); absolute */
  root: string;
  hasher: HasherFactory;
  /** the `xfs` repository type: a repository that does not exist yet is made flat (the original's layout) */
  preferFlat?: boolean;
}

/** A RepositoryHost whose lock file is known without asking anything (always a string). */
export interface PosixHost extends RepositoryHost {
  readonly root: string;
  open(name: string): PosixRemoteFilesystem | FlatRemoteFilesystem;
  lockFile(name: string): string;
}

/** One directory component: contracts' repository-name rule (never hidden, `.` or `..`). */
function repoDir(root: string, name: string): string {
  return path.join(root, validateRepositoryName(name));
}

/**
 * The repositories under one directory, of both posix layouts:
 * `<root>/<name>` with `current` → `snapshots/sN` (lock `<root>/<name>/lock`),
 * or the original dsg's flat xfs tree (lock beside it,
 * `<root>/.<name>.dsg-lock`). An existing repository's layout decides
 * (repositoryLayout); `preferFlat` only chooses for a new one. The lock
 * file follows the same choice, so it is looked up on disk per call.
 */
export function posixHost(options: PosixHostOptions): PosixHost {
  if (!options.root || !path.isAbsolute(options.root)) {
    throw new ConfigError(
      `the repository root must be an absolute directory: ${JSON.stringify(String(options.root))}`,
      { field: 'root' },
      {
        recoveryHint: 'Pass the absolute directory that holds the repositories.',
      },
    );
  }
  const root = path.resolve(options.root);
  const preferFlat = options.preferFlat === true;
  const hasher = options.hasher;
  return {
    root,
    open: (name) => openPosixRepository(repoDir(root, name), { hasher, preferFlat }),
    lockFile: (name) => posixLockFile(repoDir(root, name), { preferFlat }),
    list: () => listPosixAndFlatRepositories(root),
    summaries: () => posixRepositorySummaries(root),
  };
}
