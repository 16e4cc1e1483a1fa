import path from 'node:path';
import { parseSnapshotId, snapshotNumber as numberOf } from '@dsg/contracts';

/**
 * The on-disk layout of one repository (the directory `<base>/<name>`):
 *
 *   snapshots/s1/ …  full trees, read-only after commit
 *   snapshots/sN.json metadata of sN (written before sN/ appears)
 *   current          symlink → `snapshots/sN`, switched by one rename
 *   tx/<tx>/         work areas, renamed to snapshots/sN at commit
 *   parked/<hash>    verified uploads kept for the next transaction (parked.ts), never in a snapshot
 *   lock             reserved for the agent's lock file; never touched here
 *
 * Temporary names all start with `.` so they never look like a snapshot.
 */
export const SNAPSHOTS = 'snapshots';
export const CURRENT = 'current';
export const TX = 'tx';
export const LOCK = 'lock';
export const PARKED = 'parked';
/** `.current-<tx>`: the new symlink before it is renamed over `current`. */
export const TEMP_LINK_PREFIX = '.current-';

/** The number N of `sN`, or null when the name is not a snapshot id (contracts' one rule). */
export function snapshotNumber(id: string): number | null {
  return numberOf(id);
}

/** N of a snapshot id, or a ValidationError (contracts' one rule). */
export function assertSnapshotId(id: string): number {
  return numberOf(parseSnapshotId(id))!;
}

export class Layout {
  constructor(readonly root: string) {}
  get snapshots(): string {
    return path.join(this.root, SNAPSHOTS);
  }
  get current(): string {
    return path.join(this.root, CURRENT);
  }
  get txDir(): string {
    return path.join(this.root, TX);
  }
  get parked(): string {
    return path.join(this.root, PARKED);
  }
  snapshot(n: number): string {
    return path.join(this.snapshots, `s${n}`);
  }
  snapshotMeta(n: number): string {
    return path.join(this.snapshots, `s${n}.json`);
  }
  work(tx: string): string {
    return path.join(this.txDir, tx);
  }
  tempLink(tx: string): string {
    return path.join(this.root, TEMP_LINK_PREFIX + tx);
  }
  /** The relative target `current` points at for snapshot n. */
  static linkTarget(n: number): string {
    return `${SNAPSHOTS}/s${n}`;
  }
  /** Parse a `current` link target back to N, or null if it is not ours. */
  static parseLinkTarget(target: string): number | null {
    const parts = target.split('/');
    if (parts.length !== 2 || parts[0] !== SNAPSHOTS) return null;
    return snapshotNumber(parts[1]!);
  }
}
