import { retryWhile, ZfsOperationError, type RetryPolicy } from '@dsg/contracts';
import {
  assertDatasetName,
  assertPropertyName,
  assertPropertyValue,
  assertSnapshotName,
  assertZfsObjectName,
} from './names.js';
import { createZfsRunner, type ZfsRunner } from './runner.js';

/** How long busy errors are retried (defaults: 20000 ms in total, pauses from 100 ms doubling up to 1000 ms). */
export type BusyRetry = Partial<RetryPolicy>;

export type ListRow = Record<string, string>;

/** Where ZFS says a dataset is mounted (`zfs get -H -o property,value,source mountpoint,mounted`). */
export interface MountInfo {
  /** the mountpoint property: an absolute path, or `none` / `legacy` */
  mountpoint: string;
  /** where it comes from: `local`, `received`, `default`, `inherited from <ds>`, … */
  source: string;
  mounted: boolean;
}

/** zfs-fuse and OpenZFS both say one of these while a mount or a just-promoted dataset is in use. */
const BUSY = /dataset is busy|target is busy|device or resource busy|pool or dataset is busy/i;

function hintFor(stderr: string): string | undefined {
  if (BUSY.test(stderr)) return 'A process is using the repository mount (see `fuser -vm <dir>`); close it and retry.';
  if (/does not exist/.test(stderr)) return 'Check the dataset name and the pool; `zfs list` shows what exists.';
  if (/already exists/.test(stderr))
    return 'A leftover of an earlier transaction may exist: run recovery (dsg clean), then retry.';
  if (/password is required|not allowed to execute|permission denied/i.test(stderr))
    return 'Run the agent as root, or give its user passwordless `sudo -n zfs` and set `sudo: true` for the repository (dsg init/clone --sudo).';
  if (/out of space|no space/i.test(stderr)) return 'Free space in the pool (zpool list; zfs list).';
  if (/no such pool|pool.*unavailable|I\/O error|failed to connect/i.test(stderr))
    return 'Check ZFS pool health (zpool status) and that the zfs daemon is running.';
  return undefined;
}

/**
 * The typed `zfs` command layer. Every name is validated before the runner
 * is called; every failure is a ZfsOperationError with the argv, exit code,
 * stderr and a hint; busy errors are retried with bounded exponential backoff.
 */
export class Zfs {
  readonly runner: ZfsRunner;
  private readonly retry: RetryPolicy;

  constructor(options: { runner?: ZfsRunner; retry?: BusyRetry } = {}) {
    this.runner = options.runner ?? createZfsRunner();
    this.retry = { timeoutMs: 20_000, baseDelayMs: 100, maxDelayMs: 1_000, ...options.retry };
  }

  /** Run once or until not busy; throws ZfsOperationError on failure. */
  async exec(args: string[], options: { path?: string; retryBusy?: boolean } = {}): Promise<string> {
    const busy = (r: { exitCode: number; stderr: string }): boolean =>
      options.retryBusy !== false && r.exitCode !== 0 && BUSY.test(r.stderr.trim());
    const r = await retryWhile(() => this.runner.run(args), busy, this.retry);
    if (r.exitCode === 0) return r.stdout;
    const stderr = r.stderr.trim();
    const argv = this.runner.argv(args);
    const hint = hintFor(stderr);
    throw new ZfsOperationError(
      `${argv.join(' ')} failed (exit ${r.exitCode}): ${stderr || '(no output)'}`,
      { zfsCommand: argv, exitCode: r.exitCode, stderr, ...(options.path === undefined ? {} : { path: options.path }) },
      hint === undefined ? {} : { recoveryHint: hint },
    );
  }

  /**
   * `zfs list -H -o <props> …` parsed into rows. (zfs-fuse's list has no
   * `-p`; exact numbers come from `get -p`, see getProps.)
   */
  async list(
    names: string[],
    props: string[],
    options: { recursive?: boolean; depth?: number; types?: ('filesystem' | 'snapshot' | 'all')[] } = {},
  ): Promise<ListRow[]> {
    names.forEach(assertZfsObjectName);
    props.forEach(assertPropertyName);
    const args = ['list', '-H', '-o', props.join(',')];
    if (options.depth !== undefined) args.push('-r', '-d', String(Math.max(0, Math.floor(options.depth))));
    else if (options.recursive) args.push('-r');
    if (options.types) args.push('-t', options.types.join(','));
    const out = await this.exec([...args, ...names]);
    return out
      .split('\n')
      .filter((l) => l.length > 0)
      .map((line) => {
        const cells = line.split('\t');
        const row: ListRow = {};
        props.forEach((p, i) => (row[p] = cells[i] ?? ''));
        return row;
      });
  }

  /**
   * `zfs get -H -p -o name,property,value,source`: exact values (creation in
   * epoch seconds); a user property that is not set anywhere is left out.
   */
  async getProps(
    names: string[],
    props: string[],
    options: { depth?: number } = {},
  ): Promise<Map<string, Map<string, string>>> {
    names.forEach(assertZfsObjectName);
    props.forEach(assertPropertyName);
    const args = ['get', '-H', '-p', '-o', 'name,property,value,source'];
    if (options.depth !== undefined) args.push('-r', '-d', String(options.depth));
    const out = await this.exec([...args, props.join(','), ...names]);
    const res = new Map<string, Map<string, string>>();
    for (const line of out.split('\n')) {
      if (!line) continue;
      const [name, prop, value, source] = line.split('\t');
      if (name === undefined || prop === undefined || value === undefined) continue;
      if (prop.includes(':') && source === '-') continue; // unset user property
      let m = res.get(name);
      if (!m) res.set(name, (m = new Map<string, string>()));
      m.set(prop, value);
    }
    return res;
  }

  /**
   * Where a dataset is mounted, asked from ZFS (never assumed from a
   * config): the mountpoint property with its source, and whether it is
   * mounted now.
   */
  async mountInfo(name: string): Promise<MountInfo> {
    assertDatasetName(name);
    const out = await this.exec(['get', '-H', '-o', 'property,value,source', 'mountpoint,mounted', name]);
    const info: MountInfo = { mountpoint: '', source: '', mounted: false };
    for (const line of out.split('\n')) {
      const [prop, value = '', source = ''] = line.split('\t');
      if (prop === 'mountpoint') {
        info.mountpoint = value;
        info.source = source;
      } else if (prop === 'mounted') info.mounted = value === 'yes';
    }
    return info;
  }

  /** Whether a dataset/snapshot exists; any failure other than "does not exist" is thrown. */
  async exists(name: string): Promise<boolean> {
    try {
      await this.list([name], ['name']);
      return true;
    } catch (e) {
      if (e instanceof ZfsOperationError && /does not exist/.test(e.stderr ?? '')) return false;
      throw e;
    }
  }

  private static propArgs(props: Record<string, string>): string[] {
    const out: string[] = [];
    for (const [k, v] of Object.entries(props)) {
      assertPropertyName(k);
      assertPropertyValue(k, v);
      out.push('-o', `${k}=${v}`);
    }
    return out;
  }

  async create(name: string, props: Record<string, string> = {}): Promise<void> {
    assertDatasetName(name);
    await this.exec(['create', ...Zfs.propArgs(props), name]);
  }

  async snapshot(name: string, props: Record<string, string> = {}): Promise<void> {
    assertSnapshotName(name);
    await this.exec(['snapshot', ...Zfs.propArgs(props), name]);
  }

  async clone(snapshot: string, target: string, props: Record<string, string> = {}): Promise<void> {
    assertSnapshotName(snapshot);
    assertDatasetName(target);
    await this.exec(['clone', ...Zfs.propArgs(props), snapshot, target]);
  }

  async promote(name: string): Promise<void> {
    assertDatasetName(name);
    await this.exec(['promote', name]);
  }

  /** Rename, then prove it by listing: the new name exists and the old one is gone. */
  async rename(from: string, to: string): Promise<void> {
    assertDatasetName(from);
    assertDatasetName(to);
    await this.exec(['rename', from, to]);
    const [hasNew, hasOld] = [await this.exists(to), await this.exists(from)];
    if (!hasNew || hasOld) {
      throw new ZfsOperationError(
        `rename ${from} → ${to} reported success but listing shows ${from}: ${hasOld ? 'present' : 'absent'}, ${to}: ${hasNew ? 'present' : 'absent'}`,
        {
          zfsCommand: this.runner.argv(['rename', from, to]),
        },
      );
    }
  }

  async mount(name: string): Promise<void> {
    assertDatasetName(name);
    await this.exec(['mount', name]);
  }

  async unmount(name: string): Promise<void> {
    assertDatasetName(name);
    await this.exec(['unmount', name]);
  }

  async destroy(name: string, options: { recursive?: boolean } = {}): Promise<void> {
    assertZfsObjectName(name);
    await this.exec(['destroy', ...(options.recursive ? ['-r'] : []), name]);
  }

  /** `retryBusy: false`: one attempt (a caller that can do without the property must not wait out a busy dataset). */
  async set(name: string, props: Record<string, string>, options: { retryBusy?: boolean } = {}): Promise<void> {
    assertZfsObjectName(name);
    const pairs = Object.entries(props).map(([k, v]) => {
      assertPropertyName(k);
      assertPropertyValue(k, v);
      return `${k}=${v}`;
    });
    // zfs-fuse's `set` takes one property per call
    for (const pair of pairs) await this.exec(['set', pair, name], options);
  }

  async inherit(name: string, prop: string): Promise<void> {
    assertZfsObjectName(name);
    assertPropertyName(prop);
    await this.exec(['inherit', prop, name]);
  }
}
