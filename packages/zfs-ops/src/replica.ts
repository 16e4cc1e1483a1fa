import { DsgError } from '@dsg/contracts';

/**
 * The user property that marks a dataset as a read-only replica:
 * `dsg:replica-of=<primary host>:<primary dataset>`. `dsg-agent replicate`
 * sets it (with readonly=on) on every dataset it receives; `dsg-agent
 * promote` removes it. A property rather than readonly alone: zfs-fuse
 * reports readonly as "off (temporary)" even where it refuses writes, and
 * the value names the primary for the refusal.
 */
export const REPLICA_PROP = 'dsg:replica-of';

/** The refusal of a write transaction on a replica, naming its primary. */
export function replicaError(dataset: string, primary: string): DsgError {
  return new DsgError(
    'ZFS_REPLICA',
    `${dataset} is a read-only replica of ${primary}: dsg does not write to it (clone, status, log and snapfetch work)`,
    {
      recoveryHint: `Sync to the primary ${primary}. If the primary is gone for good, make this replica the primary on its host (dsg-agent promote --repository <name> …) and point the project at it.`,
    },
  );
}
