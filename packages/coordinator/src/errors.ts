import { ConflictError, DsgError, ValidationError } from '@dsg/contracts';
import type { PathPlan } from '@dsg/manifest';

/**
 * Conflicts refused the sync; carries the three versions so the CLI can write
 * conflicts.txt (formatConflictFile). Under `sync --continue`, `resolved` holds
 * the conflicts the given resolutions still answer: the new conflicts.txt must
 * list them too, pre-filled — writing only the new ones made the user's
 * earlier answers vanish, and two clients editing the same files could then
 * bounce between two halves of the conflict list forever.
 */
export class SyncConflictError extends ConflictError {
  readonly conflicts: readonly PathPlan[];
  readonly resolved: readonly { plan: PathPlan; resolution: 'L' | 'C' | 'R' }[];
  constructor(
    conflicts: readonly PathPlan[],
    resolved: readonly { plan: PathPlan; resolution: 'L' | 'C' | 'R' }[] = [],
  ) {
    super(conflicts.map((c) => c.path));
    this.conflicts = conflicts;
    this.resolved = resolved;
  }
}

/** The scan found names or files a manifest cannot hold; syncing would read them as deletions. */
export class InvalidNamesError extends ValidationError {
  readonly invalid: readonly { path: string; reason: string }[];
  constructor(invalid: readonly { path: string; reason: string }[]) {
    const first = invalid[0];
    super(
      `${invalid.length} path(s) cannot be synced${first ? `, e.g. ${JSON.stringify(first.path)}: ${first.reason}` : ''}`,
      first ? { path: first.path } : {},
      {
        code: 'INVALID_NAMES',
        recoveryHint: 'Rename or remove the listed paths (`dsg status` lists them all), or add them to ignore.paths.',
      },
    );
    this.invalid = invalid;
  }
}

/** The repository's head is not the one the plan was made against. */
export class RemoteMovedError extends DsgError {
  constructor(expected: string | null, actual: string | null) {
    super(
      'REMOTE_MOVED',
      `the repository moved from ${expected ?? '(none)'} to ${actual ?? '(none)'} since the plan was made`,
      {
        recoveryHint: 'Run `dsg status` to see the new plan, then sync again.',
      },
    );
  }
}
