import path from 'node:path';
import {
  DsgError,
  faultPoint,
  isTransactionId,
  ZfsOperationError,
  type BeginResult,
  type CleanupReport,
  type RecoveryReport,
  type SnapshotInfo,
  type TransactionPattern,
} from '@dsg/contracts';
import { assertDatasetName, assertRepositoryName, assertSnapshotId, decodePropValue, encodePropValue } from './names.js';
import type { Zfs } from './zfs.js';

/** User properties this package writes. Temp objects carry TX; PHASE and PENDING make crash recovery possible. */
export const PROP = {
  tx: 'dsg:tx',
  phase: 'dsg:phase',
  pending: 'dsg:pending',
  message: 'dsg:message',
  manifestHash: 'dsg:manifest-hash',
  user: 'dsg:user',
  createdAt: 'dsg:created-at',
  view: 'dsg:view',
} as const;

export type Phase = 'begun' | 'committing' | 'rolling-back';

/** What commit needs to finish, stored on the temp dataset so recovery can roll forward. */
interface Pending {
  pattern: TransactionPattern;
  snapshot: SnapshotInfo;
}

export type Logger = (level: 'info' | 'warn', line: string) => void;

interface Obj {
  name: string;
  origin: string;
  mounted: boolean;
  tx?: string;
  phase?: string;
  pending?: Pending;
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function decodePending(v: string | undefined): Pending | undefined {
  if (!v) return undefined;
  try {
    return JSON.parse(decodePropValue(v)) as Pending;
  } catch {
    return undefined;
  }
}

/**
 * The ZFS transaction patterns of ARCHITECTURE.md "ZFS patterns" for one
 * repository `P/<repo>` (mountpoints inherited from P, never set).
 */
export class ZfsOperations {
  readonly parent: string;
  readonly repo: string;
  readonly mountpoint: string;
  readonly dataset: string;
  private readonly zfs: Zfs;
  private readonly log: Logger;
  private readonly active = new Map<string, TransactionPattern>();

  constructor(o: { parent: string; repo: string; mountpoint: string; zfs: Zfs; log?: Logger }) {
    assertDatasetName(o.parent);
    assertRepositoryName(o.repo);
    if (!path.isAbsolute(o.mountpoint)) throw new DsgError('ZFS_CONFIG', `mountpoint must be absolute: ${o.mountpoint}`, { recoveryHint: 'Pass the directory where the parent dataset is mounted.' });
    this.parent = o.parent;
    this.repo = o.repo;
    this.mountpoint = path.resolve(o.mountpoint);
    this.dataset = `${o.parent}/${o.repo}`;
    this.zfs = o.zfs;
    this.log = o.log ?? ((level, line) => level === 'warn' && console.warn(`[dsg zfs] ${line}`));
  }

  names(tx: string): { init: string; sync: string; old: string; temp: string } {
    const d = this.dataset;
    return { init: `${d}-init-${tx}`, sync: `${d}-sync-${tx}`, old: `${d}-old-${tx}`, temp: `${d}@sync-temp-${tx}` };
  }

  /** Where a sibling of the repository dataset is mounted (inherited from P). */
  pathOf(dataset: string): string {
    return path.join(this.mountpoint, dataset.slice(this.parent.length + 1));
  }

  get livePath(): string {
    return this.pathOf(this.dataset);
  }

  private checkTx(tx: string): void {
    if (!isTransactionId(tx)) throw new DsgError('TX_ID', `not a transaction id: ${JSON.stringify(tx)}`, { recoveryHint: 'Use newTransactionId() from @dsg/contracts.' });
  }

  /**
   * init when P/<repo> "does not exist"; sync when it exists; any other
   * failure (missing parent, pool gone, zfs broken) is an error, never init.
   */
  async detect(): Promise<TransactionPattern> {
    await this.zfs.list([this.parent], ['name']); // missing parent / pool → throws
    return (await this.zfs.exists(this.dataset)) ? 'sync' : 'init';
  }

  /** Children of P plus snapshots of the repo and its temp siblings, with our properties. */
  private async scan(): Promise<Obj[]> {
    const props = ['name', 'origin', 'mounted', PROP.tx, PROP.phase, PROP.pending];
    const rows = await this.zfs.list([this.parent], props, { depth: 2, types: ['all'] });
    const prefix = this.dataset;
    return rows
      .filter((r) => {
        const n = r['name'] ?? '';
        return n === prefix || n.startsWith(prefix + '-') || n.startsWith(prefix + '@');
      })
      .map((r) => {
        const o: Obj = { name: r['name']!, origin: r['origin'] ?? '-', mounted: r['mounted'] === 'yes' };
        if (r[PROP.tx] && r[PROP.tx] !== '-') o.tx = r[PROP.tx];
        if (r[PROP.phase] && r[PROP.phase] !== '-') o.phase = r[PROP.phase];
        const p = decodePending(r[PROP.pending] !== '-' ? r[PROP.pending] : undefined);
        if (p) o.pending = p;
        return o;
      });
  }

  /** Transaction ids with leftovers: temp siblings, @sync-temp- snapshots, a live dataset still marked dsg:tx. */
  private txsIn(objs: Obj[]): string[] {
    const d = this.dataset;
    const re = new RegExp(`^${escapeRegExp(d)}(?:-(?:init|sync|old)-([^@/]+)(?:@.*)?|@sync-temp-([^@/]+)|-sync-[^@/]+@sync-temp-([^@/]+))$`);
    const txs = new Set<string>();
    for (const o of objs) {
      const m = re.exec(o.name);
      const tx = m?.[1] ?? m?.[2] ?? m?.[3];
      if (tx && isTransactionId(tx)) txs.add(tx);
      if (o.name === d && o.tx && isTransactionId(o.tx)) txs.add(o.tx);
    }
    return [...txs].sort();
  }

  async begin(tx: string): Promise<BeginResult> {
    this.checkTx(tx);
    const pattern = await this.detect();
    const orphans = this.txsIn(await this.scan()).filter((t) => t !== tx);
    if (orphans.length) {
      throw new DsgError('ZFS_ORPHANS', `repository ${this.dataset} has leftovers of interrupted transaction(s) ${orphans.join(', ')}`, {
        recoveryHint: 'Run recovery first (dsg clean / ZfsRemoteFilesystem.recover()), then retry.',
      });
    }
    const n = this.names(tx);
    const mark = { [PROP.tx]: tx, [PROP.phase]: 'begun' satisfies Phase };
    try {
      if (pattern === 'init') {
        await this.zfs.create(n.init, mark);
        faultPoint('zfs.begin.after-create');
      } else {
        await this.zfs.snapshot(n.temp, { [PROP.tx]: tx });
        faultPoint('zfs.begin.after-temp-snapshot');
        await this.zfs.clone(n.temp, n.sync, mark);
        faultPoint('zfs.begin.after-clone');
      }
    } catch (e) {
      await this.rollback(tx);
      throw e;
    }
    const work = pattern === 'init' ? n.init : n.sync;
    const mp = (await this.zfs.list([work], ['mountpoint', 'mounted']))[0];
    if (mp?.['mountpoint'] !== this.pathOf(work) || mp['mounted'] !== 'yes') {
      await this.rollback(tx);
      throw new DsgError('ZFS_CONFIG', `${work} is mounted at ${mp?.['mountpoint'] ?? '?'} (mounted=${mp?.['mounted'] ?? '?'}), expected ${this.pathOf(work)}`, {
        recoveryHint: `Pass the mountpoint of ${this.parent} and keep its children on inherited mountpoints (zfs inherit mountpoint).`,
      });
    }
    if (pattern === 'init' && this.zfs.runner.prepareWorkPath) {
      try {
        await this.zfs.runner.prepareWorkPath(this.pathOf(work));
      } catch (e) {
        await this.rollback(tx);
        throw new DsgError('ZFS_PERMISSION', errText(e), { recoveryHint: 'Allow the agent user passwordless `sudo -n chown` of new repository datasets (see the dsg README), or run it as root.' });
      }
    }
    this.active.set(tx, pattern);
    return { pattern, workPath: this.pathOf(work) };
  }

  async commit(tx: string, info: SnapshotInfo): Promise<void> {
    this.checkTx(tx);
    assertSnapshotId(info.snapshotId);
    const pattern = this.active.get(tx);
    if (!pattern) throw new DsgError('TX_STATE', `transaction ${tx} was not begun here`, { recoveryHint: 'Call begin() first; an interrupted transaction is handled by recover().' });
    if (pattern === 'sync' && (await this.zfs.exists(`${this.dataset}@${info.snapshotId}`))) {
      throw new DsgError('ZFS_SNAPSHOT_EXISTS', `${this.dataset}@${info.snapshotId} already exists`, { recoveryHint: 'Pull the latest snapshot and sync again.' });
    }
    const n = this.names(tx);
    const pending: Pending = { pattern, snapshot: info };
    const work = pattern === 'init' ? n.init : n.sync;
    await this.zfs.set(work, { [PROP.pending]: encodePropValue(JSON.stringify(pending)), [PROP.phase]: 'committing' satisfies Phase });
    if (pattern === 'init') {
      faultPoint('zfs.init.before-unmount');
      await this.zfs.unmount(n.init); // rename of a mounted dataset fails on zfs-fuse
      faultPoint('zfs.init.after-unmount');
      await this.zfs.rename(n.init, this.dataset);
      faultPoint('zfs.init.after-rename');
    } else {
      faultPoint('zfs.sync.before-unmount');
      await this.zfs.unmount(this.dataset);
      await this.zfs.unmount(n.sync);
      faultPoint('zfs.sync.after-unmount');
      await this.zfs.promote(n.sync);
      faultPoint('zfs.sync.after-promote');
    }
    await this.finish(tx, pending);
    this.active.delete(tx);
  }

  /**
   * Everything after the point of no return (init: the rename; sync: the
   * promote), idempotent from any intermediate state, so commit and
   * recovery share it.
   */
  private async finish(tx: string, pending: Pending): Promise<void> {
    const n = this.names(tx);
    const d = this.dataset;
    const has = async (name: string): Promise<boolean> => this.zfs.exists(name);
    if (pending.pattern === 'sync') {
      if (await has(n.sync)) {
        if (await has(d)) {
          await this.unmountIfMounted(d);
          await this.unmountIfMounted(n.sync);
          await this.zfs.rename(d, n.old);
          faultPoint('zfs.sync.after-rename-old');
        }
        await this.zfs.rename(n.sync, d);
        faultPoint('zfs.sync.after-rename-new');
      }
    }
    await this.mountIfUnmounted(d);
    faultPoint(`zfs.${pending.pattern}.after-mount`);
    const s = pending.snapshot;
    const snap = `${d}@${s.snapshotId}`;
    if (!(await has(snap))) {
      await this.zfs.snapshot(snap, {
        [PROP.message]: encodePropValue(s.message),
        [PROP.manifestHash]: encodePropValue(s.manifestHash),
        [PROP.user]: encodePropValue(s.user),
        [PROP.createdAt]: encodePropValue(s.createdAt),
      });
    }
    faultPoint(`zfs.${pending.pattern}.after-snapshot`);
    // The commit has happened; cleanup failures are logged and left to recovery.
    if (pending.pattern === 'sync') {
      // -old- first: it is a clone of @sync-temp-, which cannot go while it exists
      await this.quietly(`destroy ${n.old}`, async () => (await has(n.old)) && this.zfs.destroy(n.old, { recursive: true }));
      faultPoint('zfs.sync.after-destroy-old');
      await this.quietly(`destroy ${n.temp}`, async () => (await has(n.temp)) && this.zfs.destroy(n.temp));
      faultPoint('zfs.sync.after-destroy-temp');
    }
    await this.quietly(`clear dsg:tx on ${d}`, () => this.clearMarks(d));
  }

  private async clearMarks(d: string): Promise<void> {
    for (const p of [PROP.pending, PROP.phase, PROP.tx]) await this.zfs.inherit(d, p);
  }

  private async quietly(what: string, fn: () => Promise<unknown>): Promise<boolean> {
    try {
      await fn();
      return true;
    } catch (e) {
      this.log('warn', `${what} failed (left for recovery): ${errText(e)}`);
      return false;
    }
  }

  private async isMounted(d: string): Promise<boolean> {
    return (await this.zfs.list([d], ['mounted']))[0]?.['mounted'] === 'yes';
  }

  private async unmountIfMounted(d: string): Promise<void> {
    if (await this.isMounted(d)) await this.zfs.unmount(d);
  }

  private async mountIfUnmounted(d: string): Promise<void> {
    if (!(await this.isMounted(d))) await this.zfs.mount(d);
  }

  /**
   * Undo tx from whatever state it is in. Never throws: what could not be
   * removed is reported. After a promote, `zfs promote P/<repo>` first gives
   * history back to the live dataset.
   */
  async rollback(tx: string): Promise<CleanupReport> {
    const report: CleanupReport = { removed: [], leftovers: [] };
    const n = this.names(tx);
    const d = this.dataset;
    this.active.delete(tx);
    const step = async (name: string, fn: () => Promise<unknown>, removes = true): Promise<void> => {
      try {
        await fn();
        if (removes) report.removed.push(name);
      } catch (e) {
        report.leftovers.push({ name, error: errText(e) });
      }
    };
    let objs: Obj[];
    try {
      if (!isTransactionId(tx)) throw new Error(`not a transaction id: ${JSON.stringify(tx)}`);
      objs = await this.scan();
    } catch (e) {
      report.leftovers.push({ name: d, error: `cannot inspect: ${errText(e)}` });
      return report;
    }
    const find = (name: string): Obj | undefined => objs.find((o) => o.name === name);
    const init = find(n.init);
    if (init) await step(n.init, () => this.zfs.destroy(n.init, { recursive: true }));
    let live = find(d);
    const liveIsNew = live?.tx === tx && live.pending?.pattern === 'init';
    if (liveIsNew) {
      // an init that got past its rename: the repository did not exist before
      await step(d, () => this.zfs.destroy(d, { recursive: true }));
      return report;
    }
    let sync = find(n.sync);
    const old = find(n.old);
    const marked = sync ?? (live?.tx === tx ? live : undefined);
    if (marked) await step(`${marked.name} ${PROP.phase}=rolling-back`, () => this.zfs.set(marked.name, { [PROP.phase]: 'rolling-back' }), false);
    faultPoint('zfs.rollback.marked');
    // After both renames: the new generation sits at P/<repo>; put it back at -sync-.
    if (live && live.tx === tx && old && !sync) {
      await step(`rename ${d} → ${n.sync}`, async () => {
        await this.unmountIfMounted(d);
        await this.zfs.rename(d, n.sync);
      }, false);
      live = undefined;
      sync = { name: n.sync, origin: '-', mounted: false };
    }
    // Between the renames (or after both, undone above): the old generation goes back to P/<repo>.
    if (!live && old) {
      await step(`rename ${n.old} → ${d}`, async () => {
        await this.unmountIfMounted(n.old);
        await this.zfs.rename(n.old, d);
      }, false);
    }
    // If the clone owns history (promoted), give it back to the live dataset.
    await step(`promote ${d}`, async () => {
      if (!(await this.zfs.exists(d))) return;
      const origin = (await this.zfs.list([d], ['origin']))[0]?.['origin'] ?? '-';
      if (origin === `${n.sync}@sync-temp-${tx}`) {
        await this.unmountIfMounted(n.sync);
        await this.zfs.promote(d);
        faultPoint('zfs.rollback.after-promote');
      }
    }, false);
    if (sync) await step(n.sync, () => this.zfs.destroy(n.sync, { recursive: true }));
    await step(n.temp, async () => {
      if (await this.zfs.exists(n.temp)) await this.zfs.destroy(n.temp);
    });
    await step(`mount ${d}`, async () => {
      if (await this.zfs.exists(d)) await this.mountIfUnmounted(d);
    }, false);
    // P/<repo> is back, so an -old-<tx> still here was never ours (we only ever rename P/<repo> to it)
    await step(n.old, async () => {
      if (old && (await this.zfs.exists(n.old)) && (await this.zfs.exists(d))) {
        throw new Error(`${n.old} was not made by transaction ${tx} (it blocked the commit); inspect and remove it by hand`);
      }
    }, false);
    report.removed = report.removed.filter((r) => !report.leftovers.some((l) => l.name === r));
    return report;
  }

  /**
   * Find every leftover of an interrupted transaction and end the
   * repository at exactly the old or the new snapshot: before the point of
   * no return (init rename / sync promote) → roll back; after → roll forward.
   */
  async recover(): Promise<RecoveryReport> {
    const report: RecoveryReport = { removed: [], leftovers: [], transactions: [] };
    const objs = await this.scan();
    for (const tx of this.txsIn(objs)) {
      const n = this.names(tx);
      const find = (name: string): Obj | undefined => objs.find((o) => o.name === name);
      const live = find(this.dataset);
      const sync = find(n.sync);
      const old = find(n.old);
      const carrier = live?.tx === tx ? live : (sync ?? find(n.init));
      const pending = carrier?.pending;
      const promoted =
        (live?.tx === tx && !find(n.init)) || // init after rename, or sync after both renames
        (!live && !!old) || // between the two renames
        (!!live && !!sync && live.origin === `${n.sync}@sync-temp-${tx}`); // promoted, not renamed
      const forward = promoted && pending !== undefined && carrier?.phase !== 'rolling-back';
      if (forward) {
        try {
          await this.finish(tx, pending);
          report.transactions.push({ transactionId: tx, action: 'rolled-forward' });
          continue;
        } catch (e) {
          this.log('warn', `roll-forward of ${tx} failed, rolling back: ${errText(e)}`);
        }
      }
      const r = await this.rollback(tx);
      report.removed.push(...r.removed);
      report.leftovers.push(...r.leftovers);
      const touched = !!(find(n.init) || sync || old || live?.tx === tx);
      report.transactions.push({ transactionId: tx, action: touched ? 'rolled-back' : 'cleaned' });
    }
    // read-only clones made by readSnapshotFile whose process is gone
    for (const v of await this.viewClones()) {
      if (v.kind === 'read' && !pidAlive(v.pid)) {
        try {
          await this.zfs.destroy(v.name, { recursive: true });
          report.removed.push(v.name);
        } catch (e) {
          report.leftovers.push({ name: v.name, error: errText(e) });
        }
      }
    }
    return report;
  }

  async viewClones(): Promise<{ name: string; kind: string; pid: number; mountpoint: string }[]> {
    const rows = await this.zfs.list([this.parent], ['name', PROP.view, 'mountpoint'], { depth: 1, types: ['filesystem'] });
    // exactly `<repo>-view-sN-<8 hex>` (remote-fs cloneView): a prefix test would also take
    // the views of a repository named `<repo>-view`
    const own = new RegExp(`^${escapeRegExp(this.dataset)}-view-s[1-9][0-9]*-[0-9a-f]{8}$`);
    return rows
      .filter((r) => own.test(r['name'] ?? '') && r[PROP.view] && r[PROP.view] !== '-')
      .map((r) => {
        const [kind = '', pid = '0'] = (r[PROP.view] ?? '').split('.');
        return { name: r['name']!, kind, pid: Number(pid), mountpoint: r['mountpoint'] ?? '' };
      });
  }
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export { ZfsOperationError };
