import { assertRepositoryName } from './names.js';

/**
 * The parked directory's name (see ParkedStore of @dsg/contracts), beside the
 * lock file `.<repo>.dsg-lock` in P's directory: outside every dataset of the
 * repository, because a work dataset is destroyed at rollback and a hard link
 * could not outlive it.
 */
export function zfsParkedDirName(repo: string): string {
  assertRepositoryName(repo);
  return `.${repo}.dsg-parked`;
}
