import { readdir, readlink, stat } from 'node:fs/promises';
import path from 'node:path';
import { repositoryNameProblem } from '@dsg/contracts';
import { errno } from './fs-util.js';
import { CURRENT, Layout } from './layout.js';

/**
 * Names of the repositories under `base`: directories holding a `current`
 * link to an existing snapshot. Leftovers (an init that never committed,
 * hidden temp dirs, plain files) are ignored. Sorted.
 */
export async function listPosixRepositories(base: string): Promise<string[]> {
  let entries;
  try {
    entries = await readdir(base, { withFileTypes: true });
  } catch (e) {
    if (errno(e) === 'ENOENT') return [];
    throw e;
  }
  const out: string[] = [];
  for (const ent of entries) {
    // only names `open` would take (one rule: contracts' repository name)
    if (!ent.isDirectory() || repositoryNameProblem(ent.name) !== null) continue;
    const repo = path.join(base, ent.name);
    try {
      const n = Layout.parseLinkTarget(await readlink(path.join(repo, CURRENT)));
      if (n !== null && (await stat(new Layout(repo).snapshot(n))).isDirectory()) out.push(ent.name);
    } catch {
      // no current link, or it dangles: not a repository (yet)
    }
  }
  return out.sort();
}
