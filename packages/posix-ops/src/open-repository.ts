import { lstatSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { repositoryNameProblem, type HasherFactory } from '@dsg/contracts';
import { FlatRemoteFilesystem, flatLockFile, isFlatRepository } from './flat-remote-filesystem.js';
import { errno } from './fs-util.js';
import { LOCK, TX } from './layout.js';
import { listPosixRepositories } from './list-repositories.js';
import { PosixRemoteFilesystem } from './posix-remote-filesystem.js';

/**
 * Which layout a repository directory gets: `snapshots` (current →
 * snapshots/sN), or `flat` (the original dsg's xfs repository: the tree with
 * `.dsg/` inside). An existing repository decides by itself (flat when it
 * has `.dsg/last-sync.json` at its top and no `current`; an init in
 * progress by what it has made so far); `preferFlat` (the `xfs` type) only
 * decides for one that does not exist yet.
 */
export function repositoryLayout(root: string, options: { preferFlat?: boolean } = {}): 'flat' | 'snapshots' {
  if (isFlatRepository(root)) return 'flat';
  // a snapshot repository (or an init of one in progress) stays one
  if (isEntry(path.join(root, 'current')) || isEntry(path.join(root, 'snapshots'))) return 'snapshots';
  // `.dsg/` at the top and nothing of the snapshot layout: a flat init in progress (its lock is beside it)
  if (isDirectory(path.join(root, '.dsg'))) return 'flat';
  if (isEntry(path.join(root, TX))) return 'snapshots'; // a snapshot init in progress
  return options.preferFlat ? 'flat' : 'snapshots';
}

function isDirectory(p: string): boolean {
  try {
    return lstatSync(p).isDirectory();
  } catch {
    return false;
  }
}

function isEntry(p: string): boolean {
  try {
    lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

export interface OpenPosixOptions {
  hasher: HasherFactory;
  /** the `xfs` repository type: a repository that does not exist yet is made flat */
  preferFlat?: boolean;
}

/** The backend for `<base>/<name>`: PosixRemoteFilesystem, or FlatRemoteFilesystem for the original's flat layout. */
export function openPosixRepository(
  root: string,
  options: OpenPosixOptions,
): PosixRemoteFilesystem | FlatRemoteFilesystem {
  return repositoryLayout(root, options) === 'flat'
    ? new FlatRemoteFilesystem({ root, hasher: options.hasher })
    : new PosixRemoteFilesystem({ root, hasher: options.hasher });
}

/** The lock file the agent uses for `<base>/<name>`, by the same choice of layout. */
export function posixLockFile(root: string, options: { preferFlat?: boolean } = {}): string {
  return repositoryLayout(root, options) === 'flat' ? flatLockFile(root) : path.join(root, LOCK);
}

/** Repositories under `base` of either layout, sorted. */
export async function listPosixAndFlatRepositories(base: string): Promise<string[]> {
  const names = new Set(await listPosixRepositories(base));
  let entries;
  try {
    entries = await readdir(base, { withFileTypes: true });
  } catch (e) {
    if (errno(e) === 'ENOENT') return [...names].sort();
    throw e;
  }
  for (const ent of entries) {
    if (ent.isDirectory() && repositoryNameProblem(ent.name) === null && isFlatRepository(path.join(base, ent.name)))
      names.add(ent.name);
  }
  return [...names].sort();
}

/**
 * The dsg layout of an existing repository directory, null when it is none
 * (no `current` link to a snapshot directory, not the original's flat tree):
 * what `dsg clone host:/path/name` learns through the agent's
 * `detectRepository`, without opening anything.
 */
export async function posixLayoutAt(dir: string): Promise<'snapshots' | 'flat' | null> {
  if (isFlatRepository(dir)) return 'flat';
  const name = path.basename(dir);
  const listed = await listPosixRepositories(path.dirname(dir)).catch(() => [] as string[]);
  return listed.includes(name) ? 'snapshots' : null;
}
