import { readlink } from 'node:fs/promises';
import path from 'node:path';
import type { RepositorySummary } from '@dsg/contracts';
import { errno } from './fs-util.js';
import { CURRENT, snapshotNumber } from './layout.js';
import { listPosixAndFlatRepositories, repositoryLayout } from './open-repository.js';
import { replicaOf } from './replicate.js';

/**
 * Every repository under `root` with its head (the snapshot `current`
 * points at) and its replica marker (`replica-of`): `dsg list-repos` on a
 * replica host tells replicas apart and how far behind they are, as on
 * ZFS. The original's flat layout has no snapshots and no replicas: its
 * head is left unknown.
 */
export async function posixRepositorySummaries(root: string): Promise<RepositorySummary[]> {
  const names = await listPosixAndFlatRepositories(root);
  return Promise.all(
    names.map(async (name): Promise<RepositorySummary> => {
      const dir = path.join(root, name);
      if (repositoryLayout(dir) === 'flat') return { name, replicaOf: null };
      let head: string | null = null;
      try {
        const n = snapshotNumber(path.basename(await readlink(path.join(dir, CURRENT))));
        head = n === null ? null : `s${n}`;
      } catch (e) {
        if (errno(e) !== 'ENOENT' && errno(e) !== 'EINVAL') throw e; // no `current` yet, or not a link
      }
      return { name, head, replicaOf: await replicaOf(dir) };
    }),
  );
}
