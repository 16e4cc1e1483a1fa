import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { ZfsTestEnv } from './env.js';

export interface TestParent {
  /** the parent dataset P, e.g. dsgtest/t-1a2b3c */
  dataset: string;
  /** where P is mounted (children inherit below it) */
  mountpoint: string;
  /** destroy P and everything under it (retrying while busy; see teardownDataset) */
  destroy(opts?: TeardownOptions): void;
}

function zfs(args: string[]): string {
  return execFileSync('zfs', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** A failed command's error (its stderr or message) says the dataset or mount is busy. */
function isBusy(e: unknown): boolean {
  return /busy/i.test(
    `${String((e as { stderr?: string }).stderr ?? '')} ${e instanceof Error ? e.message : String(e)}`,
  );
}

/**
 * `fn` (a command run synchronously by test code) retried while it fails
 * with "busy": zfs-fuse right after a promote or an unmount, and umount right
 * after use, report busy for a moment (docs/ARCHITECTURE.md §4 ZFS); a killed
 * `zfs send` keeps its snapshot busy until the daemon notices. Up to ~60 s
 * (10 s was once too short on a loaded box). The one synchronous copy of the rule; the engine awaits contracts'
 * `retryWhile`.
 */
export function retrySyncWhileBusy<T>(fn: () => T): T {
  for (let i = 0; ; i++) {
    try {
      return fn();
    } catch (e) {
      if (i >= 240 || !isBusy(e)) throw e;
      execFileSync('sleep', ['0.25']);
    }
  }
}

/** `zfs …` retried while zfs-fuse says "busy". */
export function zfsRetry(...args: string[]): string {
  return retrySyncWhileBusy(() => zfs(args));
}

/** A fresh parent dataset under the test pool, so tests never see each other's state. */
export function freshParent(env: ZfsTestEnv, label = 't'): TestParent {
  const dataset = `${env.pool}/${label}-${randomBytes(4).toString('hex')}`;
  zfs(['create', dataset]);
  const mountpoint = zfs(['get', '-H', '-o', 'value', 'mountpoint', dataset]).trim();
  return {
    dataset,
    mountpoint,
    destroy: (opts) => teardownDataset(dataset, opts),
  };
}

export interface TeardownOptions {
  /**
   * One attempt, no retry window: for a test that killed a `zfs send` or
   * `zfs receive` mid-stream. zfs-fuse then keeps the stream's snapshots busy
   * for good (seen: still busy 4 minutes later, no process holding them), so
   * the ~60 s window only costs time and 240 more destroys of a daemon under load.
   */
  leaveBusy?: boolean;
}

/**
 * destroyDataset for a test's teardown: a dataset still busy after the retry
 * window (or at once, with `leaveBusy`) is left (with a warning) to
 * `testenv.sh down`, which destroys the whole pool. What a test checks is
 * asserted in the test, never by its cleanup.
 */
export function teardownDataset(dataset: string, opts: TeardownOptions = {}): void {
  try {
    destroyDataset(dataset, opts);
  } catch (e) {
    if (!isBusy(e)) throw e;
    console.warn(
      `[dsg-testenv] left ${dataset} to testenv down: still busy ${opts.leaveBusy ? '(a killed stream holds it)' : 'after the retry window'}`,
    );
  }
}

/**
 * `zfs destroy -r -f` (retrying while busy, unless `leaveBusy`); a dataset
 * that does not exist is already destroyed.
 */
export function destroyDataset(dataset: string, opts: TeardownOptions = {}): void {
  const args = ['destroy', '-r', '-f', dataset];
  try {
    if (opts.leaveBusy) zfs(args);
    else zfsRetry(...args);
  } catch (e) {
    if (!/does not exist/.test(String((e as { stderr?: string }).stderr ?? ''))) throw e;
  }
}

/** `zfs list -t all` names under a dataset, for "no leftovers" assertions. */
export function listAll(dataset: string, props = ['name']): string[] {
  return zfs(['list', '-H', '-r', '-t', 'all', '-o', props.join(','), dataset])
    .trim()
    .split('\n')
    .filter(Boolean);
}
