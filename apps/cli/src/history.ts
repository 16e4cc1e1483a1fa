/**
 * What the history commands need beyond the coordinator's history reader
 * (`readHistory`, `diffManifests` of `@dsg/coordinator`, next to the sync
 * engine that writes the metadata): the argument check.
 */
import { parseSnapshotId } from '@dsg/contracts';

/** A `--snapshot` argument: contracts' one rule for snapshot ids. */
export const assertSnapshotId = (sid: string): string => parseSnapshotId(sid, 'snapshot');
