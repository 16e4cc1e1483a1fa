import { snapshotNumber, type RepositorySummary } from '@dsg/contracts';
import { assertDatasetName, isRepositoryName } from './names.js';
import { REPLICA_PROP } from './replica.js';
import type { ZfsRunner } from './runner.js';
import { Zfs } from './zfs.js';

/**
 * Every repository under `parent` with its newest `@sN` and its replica
 * marker, from one `zfs get -r -d 2` (the datasets and their snapshots):
 * `dsg list-repos` on a replica host tells replicas apart and how far they
 * are. Transaction leftovers (clones, temporary snapshots) are left out, as
 * listZfsRepositories leaves them out.
 */
export async function repositorySummaries(options: {
  parent: string;
  runner?: ZfsRunner;
}): Promise<RepositorySummary[]> {
  const parent = options.parent;
  assertDatasetName(parent);
  const zfs = new Zfs(options.runner ? { runner: options.runner } : {});
  // `type` is there for every dataset and snapshot; the marker only where set
  const props = await zfs.getProps([parent], ['type', REPLICA_PROP], { depth: 2 });
  const repos = new Map<string, { head: number | null; replicaOf: string | null }>();
  for (const [name, p] of props) {
    if (!name.startsWith(`${parent}/`) || name.includes('@') || p.get('type') !== 'filesystem') continue;
    const repo = name.slice(parent.length + 1);
    if (repo.includes('/') || !isRepositoryName(repo)) continue;
    const marker = p.get(REPLICA_PROP);
    repos.set(repo, { head: null, replicaOf: marker === undefined || marker === '' || marker === '-' ? null : marker });
  }
  for (const name of props.keys()) {
    const at = name.indexOf('@');
    if (at < 0 || !name.startsWith(`${parent}/`)) continue;
    const r = repos.get(name.slice(parent.length + 1, at));
    const n = snapshotNumber(name.slice(at + 1));
    if (r && n !== null && (r.head === null || n > r.head)) r.head = n;
  }
  return [...repos.keys()].sort().map((name) => {
    const r = repos.get(name)!;
    return { name, head: r.head === null ? null : `s${r.head}`, replicaOf: r.replicaOf };
  });
}
