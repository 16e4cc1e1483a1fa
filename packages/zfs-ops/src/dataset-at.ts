import { createZfsRunner, type ZfsRunner } from './runner.js';
import { Zfs } from './zfs.js';

/**
 * The filesystem dataset whose `mountpoint` property is `dir` (mounted now
 * or not), null when none is — or when ZFS cannot be asked here (no `zfs`
 * command, no permission): a host without ZFS simply has no dataset there.
 * Read-only (`zfs list`); what the agent's `detectRepository` asks so that
 * `dsg clone host:/path/name` needs no `--repo-type zfs --pool DS`.
 */
export async function datasetMountedAt(
  dir: string,
  options: { runner?: ZfsRunner; sudo?: boolean } = {},
): Promise<string | null> {
  const zfs = new Zfs({ runner: options.runner ?? createZfsRunner({ sudo: options.sudo ?? false }) });
  let rows;
  try {
    rows = await zfs.list([], ['name', 'mountpoint'], { types: ['filesystem'] });
  } catch {
    return null;
  }
  const want = dir.replace(/\/+$/, '');
  return rows.find((r) => r['mountpoint'] === want)?.['name'] ?? null;
}
