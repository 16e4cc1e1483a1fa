import path from 'node:path';
import {
  assertTransactionId,
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
import {
  decodeHeadFile,
  encodeHeadFile,
  readHead,
  readLiveHead,
  HEAD_RACY_MS,
  snapshotNumber,
  type Layout,
  type Metadata,
} from './layout.js';
import {
  assertDatasetName,
  assertRepositoryName,
  assertSnapshotId,
  decodePropValue,
  encodePropValue,
} from './names.js';
import { REPLICA_PROP, replicaError } from './replica.js';
import type { MountInfo, Zfs } from './zfs.js';

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
  /** on the live dataset: its head file as a session read it (layout.ts HeadFile), so the next need not parse it */
  headFile: 'dsg:head-file',
} as const;

export type Phase = 'begun' | 'committing' | 'rolling-back';

/** What commit needs to finish, stored on the temp dataset so recovery can roll forward. */
interface Pending {
  pattern: TransactionPattern;
  snapshot: SnapshotInfo;
  /**
   * sync only: the live dataset's own (local) mountpoint, which the new
   * generation takes over. Absent when the mountpoint is inherited (dsg's
   * layout): the new generation inherits the same one.
   */
  mountpoint?: string;
}

/** What begin learnt about the repository, for commit. */
interface Active {
  pattern: TransactionPattern;
  workPath: string;
  /** the head of a legacy repository at begin (see layout.ts): commit must make the next one, in .dsg/last-sync.json too */
  legacyHead?: { id: string; n: number };
}

/** A repository as ZFS and its live tree show it (see layout.ts). */
export interface RepositoryState {
  layout: Layout;
  /** `.dsg/last-sync.json`'s snapshot id; without one, the highest `@sN`; null: nothing committed */
  head: string | null;
  /**
   * the head manifest's metadata block, when `.dsg/last-sync.json` was read
   * for the head; null when the head came from the highest `@sN`, or (dsg's
   * layout) from the head file a session recorded (PROP.headFile)
   */
  headMetadata: Metadata | null;
  /** the `@sN` snapshots of the dataset: N → their properties (creation and dsg:*) */
  snapshots: Map<number, Map<string, string>>;
  /** where the live dataset is mounted (asked from ZFS), null when it is not */
  liveDir: string | null;
}

export type Logger = (level: 'info' | 'warn', line: string) => void;

interface Obj {
  name: string;
  origin: string;
  mounted: boolean;
  mountpoint: string;
  /** dsg:view of a snapshot view clone (see viewClones) */
  view?: string;
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
    const p = JSON.parse(decodePropValue(v)) as Pending;
    if (p.mountpoint !== undefined && !isMountPath(p.mountpoint)) delete p.mountpoint;
    return p;
  } catch {
    return undefined;
  }
}

/** A normalized absolute path that can be a mountpoint property value. */
export function isMountPath(v: unknown): v is string {
  return typeof v === 'string' && path.isAbsolute(v) && path.resolve(v) === v && !/[\0\t\n\r]/.test(v);
}

/**
 * The ZFS transaction patterns (docs/ARCHITECTURE.md §4 "ZFS") for one
 * repository `P/<repo>` (mountpoints inherited from P; the one exception
 * is below).
 *
 * Repositories of HRDAG/dsg (the legacy layout, see layout.ts) take the
 * same sync pattern: clone of the head → write → promote → rename → `@sN`.
 * Why not the flat posix backend's in-place commit (journal, files renamed
 * into the live tree, last-sync.json last)? Both keep the original's
 * layout: the dataset is still `P/<repo>` with the tree at its root, and
 * `.dsg/last-sync.json` in it is the new head (commit checks the work
 * area's before anything irreversible). But the clone is atomic by ZFS —
 * readers of the live tree, the original among them, see the old tree or
 * the new one, never a tree half renamed — and it is the pattern whose
 * every crash point recovery already handles. Only two things differ for
 * the original's datasets, and both are generic, not a second code path:
 *
 * - Their mountpoint is explicit (the original sets one, anywhere on the
 *   host), and a clone inherits P's instead. commit records the live
 *   dataset's own mountpoint in dsg:pending, and finish() gives it to the
 *   new generation after the renames, the old one unmounted first (it
 *   keeps the same value until it is destroyed). dsg's own datasets
 *   inherit theirs, so for them nothing changes.
 * - The original snapshots only at init. The `@sN` dsg adds for its own
 *   commits sit beside its `@s1` (promote moves every older snapshot to the
 *   new generation, so `@s1` stays); the original never creates, reads or
 *   destroys `@sN` after init, so they cannot break it.
 */
export class ZfsOperations {
  readonly parent: string;
  readonly repo: string;
  readonly mountpoint: string;
  readonly dataset: string;
  private readonly zfs: Zfs;
  private readonly log: Logger;
  private readonly active = new Map<string, Active>();
  private readonly settleTimeoutMs: number;
  private readonly headRacyMs: number;

  constructor(options: {
    parent: string;
    repo: string;
    mountpoint: string;
    zfs: Zfs;
    log?: Logger;
    /** how long a reader waits for another writer's commit to leave its rename window (default 60 s) */
    settleTimeoutMs?: number;
    /** how old the live head file's ctime must be before a session records it (default HEAD_RACY_MS) */
    headRacyMs?: number;
  }) {
    assertDatasetName(options.parent);
    assertRepositoryName(options.repo);
    if (!path.isAbsolute(options.mountpoint))
      throw new DsgError('ZFS_CONFIG', `mountpoint must be absolute: ${options.mountpoint}`, {
        recoveryHint: 'Pass the directory where the parent dataset is mounted.',
      });
    this.parent = options.parent;
    this.repo = options.repo;
    this.mountpoint = path.resolve(options.mountpoint);
    this.dataset = `${options.parent}/${options.repo}`;
    this.zfs = options.zfs;
    this.log = options.log ?? ((level, line) => level === 'warn' && console.warn(`[dsg zfs] ${line}`));
    this.settleTimeoutMs = options.settleTimeoutMs ?? 60_000;
    this.headRacyMs = options.headRacyMs ?? HEAD_RACY_MS;
  }

  names(tx: string): { init: string; sync: string; old: string; temp: string } {
    const d = this.dataset;
    return { init: `${d}-init-${tx}`, sync: `${d}-sync-${tx}`, old: `${d}-old-${tx}`, temp: `${d}@sync-temp-${tx}` };
  }

  /**
   * Where a sibling of the repository dataset would be mounted if P were
   * mounted at the configured mountpoint. Only a default: every path this
   * package reads or writes is asked from ZFS (`Zfs.mountInfo`).
   */
  pathOf(dataset: string): string {
    return path.join(this.mountpoint, dataset.slice(this.parent.length + 1));
  }

  /** The configured guess of the live tree's path; `liveDir()` asks ZFS. */
  get livePath(): string {
    return this.pathOf(this.dataset);
  }

  /**
   * Where the live dataset is mounted, asked from ZFS: null when the
   * dataset does not exist; an error when it exists but is not mounted at
   * a path (its tree, and so its head, cannot be read).
   */
  async liveDir(): Promise<string | null> {
    const m = await this.liveMount();
    if (!m) return null;
    if (!m.mounted || !path.isAbsolute(m.mountpoint)) throw this.notMounted(m);
    return m.mountpoint;
  }

  private async liveMount(): Promise<MountInfo | null> {
    try {
      return await this.zfs.mountInfo(this.dataset);
    } catch (e) {
      if (e instanceof ZfsOperationError && /does not exist/.test(e.stderr ?? '')) return null;
      throw e;
    }
  }

  private notMounted(m: MountInfo): DsgError {
    return new DsgError(
      'ZFS_NOT_MOUNTED',
      `${this.dataset} is not mounted (mountpoint=${m.mountpoint}, mounted=${m.mounted ? 'yes' : 'no'}): its tree, and the head in its .dsg/last-sync.json, cannot be read`,
      {
        recoveryHint: `Mount it (zfs mount ${this.dataset}); dsg needs a mountpoint that is a path. A dsg commit interrupted half-way is finished by recovery (dsg clean).`,
      },
    );
  }

  /**
   * The repository's layout and head (see layout.ts), or null when the
   * dataset does not exist. The head is the live tree's
   * `.dsg/last-sync.json`; only a tree without one falls back to the
   * highest `@sN`. Two zfs calls and, for the head, one file read.
   */
  async inspect(): Promise<RepositoryState | null> {
    // Readers (status, log, clone) take no lock, so they can look while
    // another client's commit is between its renames: P/<repo> missing,
    // unmounted, or the new generation mounted before its @sN. Answering
    // then would say "no repository" (a client would init) or fail; wait
    // for the commit to settle instead. Settled states cost nothing extra.
    const deadline = Date.now() + this.settleTimeoutMs;
    for (let pause = 50; ; pause = Math.min(pause * 2, 1000)) {
      let state: RepositoryState | null = null;
      let failure: Error | undefined;
      try {
        state = await this.inspectOnce();
      } catch (e) {
        if (!isInWindow(e)) throw e;
        failure = e;
      }
      // Missing or failing: an -old- or -sync- sibling means a commit is renaming.
      // "Legacy" with only the head's @sN missing: the commit's -old- is still there until its @sN is made.
      const vanished = failure !== undefined ? isGone(failure) : state === null;
      const suspect =
        failure !== undefined || state === null || (state.layout === 'legacy' && onlyHeadUnsnapshotted(state));
      if (!suspect || !(await this.unsettled(failure !== undefined || state === null, vanished))) {
        if (failure !== undefined) throw failure;
        return state;
      }
      if (Date.now() >= deadline) {
        throw new DsgError(
          'ZFS_COMMIT_IN_FLIGHT',
          `${this.dataset} stayed in the middle of a commit (its -old-/-sync- sibling is still there) for ${Math.round(this.settleTimeoutMs / 1000)} s`,
          {
            recoveryHint:
              'Another sync may still be committing; retry in a moment. If none is running, its commit was interrupted: run dsg clean (recovery finishes or undoes it).',
          },
        );
      }
      await new Promise((r) => setTimeout(r, pause));
    }
  }

  /**
   * Whether a commit is in flight: its `-old-<tx>` is there (from the first
   * rename until its @sN), or, when `orSync`, its `-sync-<tx>`. Also true
   * when P/<repo> was seen `vanished` but is back now: the window closed
   * between the two looks, so look again.
   */
  private async unsettled(orSync: boolean, vanished: boolean): Promise<boolean> {
    let names: string[];
    try {
      names = (await this.zfs.list([this.parent], ['name'], { depth: 1, types: ['filesystem'] })).map(
        (r) => r['name'] ?? '',
      );
    } catch (e) {
      if (isGone(e)) return false; // no parent: nothing can be committing under it
      throw e;
    }
    if (vanished && names.includes(this.dataset)) return true;
    const re = new RegExp(`^${escapeRegExp(this.dataset)}-(?:${orSync ? 'sync|old' : 'old'})-([^@/]+)$`);
    return names.some((n) => isTransactionId(re.exec(n)?.[1] ?? ''));
  }

  private async inspectOnce(): Promise<RepositoryState | null> {
    // One zfs call: the dataset's mount state and its @sN's properties together.
    let props: Map<string, Map<string, string>>;
    try {
      props = await this.zfs.getProps(
        [this.dataset],
        ['mountpoint', 'mounted', 'creation', PROP.message, PROP.manifestHash, PROP.user, PROP.headFile],
        { depth: 1 },
      );
    } catch (e) {
      if (isGone(e)) return null;
      throw e;
    }
    const own = props.get(this.dataset);
    if (!own) return null;
    const m: MountInfo = { mountpoint: own.get('mountpoint') ?? '', source: '', mounted: own.get('mounted') === 'yes' };
    const snapshots = new Map<number, Map<string, string>>();
    const prefix = `${this.dataset}@`;
    for (const [name, p] of props) {
      const n = name.startsWith(prefix) ? snapshotNumber(name.slice(prefix.length)) : null;
      if (n === null) continue;
      p.delete('mountpoint'); // a snapshot has none ('-')
      p.delete('mounted');
      snapshots.set(n, p);
    }
    const liveDir = m.mounted && path.isAbsolute(m.mountpoint) ? m.mountpoint : null;
    const ownFile = own.get(PROP.headFile);
    const recorded = decodeHeadFile(ownFile === undefined ? undefined : decodePropValue(ownFile));
    const live = liveDir ? await readLiveHead(liveDir, recorded, this.headRacyMs) : null;
    let head = live?.head ?? null;
    if (live?.record) {
      // for the sessions after this one; a reader that may not set it (or a dataset mid-commit) just parses again,
      // and does not wait out a busy dataset for it
      const value = encodePropValue(encodeHeadFile(live.record));
      await this.zfs.set(this.dataset, { [PROP.headFile]: value }, { retryBusy: false }).catch(() => undefined);
    }
    const legacyAt = (n: number): boolean => {
      for (let k = 1; k <= n; k++) if (!snapshots.has(k)) return true;
      return false;
    };
    // a legacy history needs the head's metadata block (listSnapshots): read it whole
    if (head && head.metadata === null && legacyAt(head.n) && liveDir) head = await readHead(liveDir);
    if (head) {
      const layout = legacyAt(head.n) ? 'legacy' : 'dsg';
      return { layout, head: head.id, headMetadata: head.metadata, snapshots, liveDir };
    }
    // Unmounted: the @sN are the whole truth only if dsg made every one of them (with its properties).
    if (!liveDir && [...snapshots.values()].some((p) => !p.has(PROP.manifestHash))) throw this.notMounted(m);
    const top = Math.max(0, ...snapshots.keys());
    return { layout: 'dsg', head: top > 0 ? `s${top}` : null, headMetadata: null, snapshots, liveDir };
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
    const props = ['name', 'origin', 'mounted', PROP.tx, PROP.phase, PROP.pending, PROP.view, 'mountpoint'];
    const rows = await this.zfs.list([this.parent], props, { depth: 2, types: ['all'] });
    const prefix = this.dataset;
    return rows
      .filter((r) => {
        const n = r['name'] ?? '';
        return n === prefix || n.startsWith(prefix + '-') || n.startsWith(prefix + '@');
      })
      .map((r) => {
        const o: Obj = {
          name: r['name']!,
          origin: r['origin'] ?? '-',
          mounted: r['mounted'] === 'yes',
          mountpoint: r['mountpoint'] ?? '-',
        };
        if (r[PROP.view] && r[PROP.view] !== '-') o.view = r[PROP.view];
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
    const re = new RegExp(
      `^${escapeRegExp(d)}(?:-(?:init|sync|old)-([^@/]+)(?:@.*)?|@sync-temp-([^@/]+)|-sync-[^@/]+@sync-temp-([^@/]+))$`,
    );
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
    assertTransactionId(tx);
    const pattern = await this.detect();
    const orphans = this.txsIn(await this.scan()).filter((t) => t !== tx);
    if (orphans.length) {
      throw new DsgError(
        'ZFS_ORPHANS',
        `repository ${this.dataset} has leftovers of interrupted transaction(s) ${orphans.join(', ')}`,
        {
          recoveryHint: 'Run recovery first (dsg clean / ZfsRemoteFilesystem.recover()), then retry.',
        },
      );
    }
    let legacyHead: Active['legacyHead'];
    if (pattern === 'sync') {
      await this.refuseUnsyncable();
      const st = await this.inspect();
      const headN = snapshotNumber(st?.head);
      if (st?.layout === 'legacy' && st.head && headN !== null) legacyHead = { id: st.head, n: headN };
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
    // Where the work dataset is mounted, asked from ZFS: it inherits P's mountpoint,
    // wherever the pool put P (not necessarily where the config says).
    let mp: MountInfo | undefined;
    try {
      mp = await this.zfs.mountInfo(work);
    } catch {
      mp = undefined;
    }
    if (!mp?.mounted || !path.isAbsolute(mp.mountpoint)) {
      await this.rollback(tx);
      throw new DsgError(
        'ZFS_CONFIG',
        `${work} is not mounted at a path (mountpoint=${mp?.mountpoint ?? '?'}, mounted=${mp?.mounted ? 'yes' : 'no'})`,
        {
          recoveryHint: `Give ${this.parent} a mountpoint its children inherit (zfs get mountpoint ${this.parent}), and keep them on inherited mountpoints (zfs inherit mountpoint).`,
        },
      );
    }
    const workPath = mp.mountpoint;
    if (workPath !== this.pathOf(work))
      this.log(
        'info',
        `${work} is mounted at ${workPath}, not below the configured ${this.mountpoint}: using what ZFS says`,
      );
    if (pattern === 'init' && this.zfs.runner.prepareWorkPath) {
      try {
        await this.zfs.runner.prepareWorkPath(workPath);
      } catch (e) {
        await this.rollback(tx);
        throw new DsgError('ZFS_PERMISSION', errText(e), {
          recoveryHint:
            'Allow the agent user passwordless `sudo -n chown` of new repository datasets (see the dsg README), or run it as root.',
        });
      }
    }
    this.active.set(tx, { pattern, workPath, ...(legacyHead ? { legacyHead } : {}) });
    return { pattern, workPath };
  }

  /** The primary this repository is a read-only replica of (its `dsg:replica-of`), or null. */
  async replicaOf(): Promise<string | null> {
    const v = (await this.zfs.getProps([this.dataset], [REPLICA_PROP])).get(this.dataset)?.get(REPLICA_PROP);
    return v === undefined || v === '' || v === '-' ? null : v;
  }

  /**
   * A sync replaces P/<repo> by a clone of it, so refuse what a clone would
   * not carry: child datasets (they would move to P/<repo>-old-<tx> with the
   * old generation, and be destroyed with it), and a mountpoint that is not
   * a path (`none`, `legacy`: the new generation could not be mounted).
   */
  private async refuseUnsyncable(): Promise<void> {
    const d = this.dataset;
    // a replica would lose its marker (a clone does not inherit it) and diverge from its primary
    const primary = await this.replicaOf();
    if (primary !== null) throw replicaError(d, primary);
    const children = (await this.zfs.list([d], ['name'], { depth: 1, types: ['all'] }))
      .map((r) => r['name'] ?? '')
      .filter((name) => name.startsWith(`${d}/`));
    if (children.length) {
      throw new DsgError(
        'ZFS_CHILD_DATASETS',
        `${d} has child datasets (${children.slice(0, 5).join(', ')}${children.length > 5 ? ', …' : ''}): a sync replaces ${d} by a clone, which would not keep them`,
        {
          recoveryHint: `Move them out of ${d} (zfs rename) before syncing.`,
        },
      );
    }
    const m = await this.zfs.mountInfo(d);
    if (!path.isAbsolute(m.mountpoint)) {
      throw new DsgError(
        'ZFS_CONFIG',
        `${d} has mountpoint=${m.mountpoint}: dsg syncs only a dataset ZFS mounts at a path`,
        {
          recoveryHint: `Set a mountpoint (zfs set mountpoint=/path ${d}) or inherit one (zfs inherit mountpoint ${d}).`,
        },
      );
    }
  }

  /**
   * A legacy repository (see layout.ts) is read by HRDAG/dsg from its
   * `.dsg/last-sync.json` alone, and the original syncs in place without
   * dsg's lock, so before the first irreversible step: the snapshot is the
   * next one, the live head is still the one the clone was made from, and
   * the work area's `.dsg/last-sync.json` names the new snapshot.
   */
  private async checkLegacyCommit(
    tx: string,
    a: Active & { legacyHead: { id: string; n: number } },
    info: SnapshotInfo,
  ): Promise<void> {
    const want = assertSnapshotId(info.snapshotId);
    if (want !== a.legacyHead.n + 1) {
      throw new DsgError(
        'ZFS_NOT_NEXT',
        `snapshot ${info.snapshotId} is not the next one after the head ${a.legacyHead.id} of ${this.dataset}`,
        {
          recoveryHint: 'Pull the latest snapshot and sync again.',
        },
      );
    }
    const live = await this.liveDir();
    const now = live ? await readHead(live) : null;
    if (now?.id !== a.legacyHead.id) {
      throw new DsgError(
        'ZFS_HEAD_MOVED',
        `the head of ${this.dataset} moved from ${a.legacyHead.id} to ${now?.id ?? 'nothing'} since transaction ${tx} began (HRDAG/dsg syncs without dsg's lock)`,
        {
          recoveryHint: 'Pull the latest snapshot and sync again.',
        },
      );
    }
    const staged = await readHead(a.workPath);
    if (staged?.id !== info.snapshotId) {
      throw new DsgError(
        'ZFS_LEGACY_MANIFEST',
        `the work area's .dsg/last-sync.json names ${staged ? staged.id : 'no snapshot'}, not ${info.snapshotId}: HRDAG/dsg reads the head of ${this.dataset} from it`,
        {
          recoveryHint: 'Write the new manifest as .dsg/last-sync.json in the transaction before committing.',
        },
      );
    }
  }

  async commit(tx: string, info: SnapshotInfo): Promise<void> {
    assertTransactionId(tx);
    assertSnapshotId(info.snapshotId);
    const a = this.active.get(tx);
    if (!a)
      throw new DsgError('TX_STATE', `transaction ${tx} was not begun here`, {
        recoveryHint: 'Call begin() first; an interrupted transaction is handled by recover().',
      });
    const pattern = a.pattern;
    if (pattern === 'sync' && (await this.zfs.exists(`${this.dataset}@${info.snapshotId}`))) {
      throw new DsgError('ZFS_SNAPSHOT_EXISTS', `${this.dataset}@${info.snapshotId} already exists`, {
        recoveryHint: 'Pull the latest snapshot and sync again.',
      });
    }
    if (a.legacyHead) await this.checkLegacyCommit(tx, { ...a, legacyHead: a.legacyHead }, info);
    const n = this.names(tx);
    const pending: Pending = { pattern, snapshot: info };
    if (pattern === 'sync') {
      // The clone inherits its mountpoint from P; an explicit one of the live dataset
      // (the original sets it) is handed to the new generation in finish().
      const live = await this.zfs.mountInfo(this.dataset);
      if ((live.source === 'local' || live.source === 'received') && isMountPath(live.mountpoint))
        pending.mountpoint = live.mountpoint;
    }
    const work = pattern === 'init' ? n.init : n.sync;
    await this.zfs.set(work, {
      [PROP.pending]: encodePropValue(JSON.stringify(pending)),
      [PROP.phase]: 'committing' satisfies Phase,
    });
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
      if (pending.mountpoint !== undefined) await this.takeMountpoint(pending.mountpoint, n.old);
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
      await this.quietly(
        `destroy ${n.old}`,
        async () => (await has(n.old)) && this.zfs.destroy(n.old, { recursive: true }),
      );
      faultPoint('zfs.sync.after-destroy-old');
      await this.quietly(`destroy ${n.temp}`, async () => (await has(n.temp)) && this.zfs.destroy(n.temp));
      faultPoint('zfs.sync.after-destroy-temp');
    }
    await this.quietly(`clear dsg:tx on ${d}`, () => this.clearMarks(d));
  }

  /**
   * The new generation takes the old one's explicit mountpoint (the
   * original's datasets have one, anywhere on the host), so P/<repo> stays
   * mounted where its users and HRDAG/dsg look for it. The old generation
   * keeps the same value until it is destroyed, so it is unmounted first:
   * only one of them is ever mounted there. Idempotent (recovery).
   */
  private async takeMountpoint(mountpoint: string, old: string): Promise<void> {
    const d = this.dataset;
    const cur = await this.zfs.mountInfo(d);
    if (cur.source === 'local' && cur.mountpoint === mountpoint) return;
    if (await this.zfs.exists(old)) await this.unmountIfMounted(old);
    await this.zfs.set(d, { mountpoint });
    faultPoint('zfs.sync.after-set-mountpoint');
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
    // the id becomes part of dataset names: a caller's non-id is reported, never used (as posix does)
    if (!isTransactionId(tx)) {
      report.leftovers.push({ name: String(tx).slice(0, 100), error: 'not a transaction id' });
      return report;
    }
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
    // The mark only tells a recovery after a crash mid-rollback to go back, not forward. On a
    // full pool `zfs set` fails (ENOSPC) where destroy still works: carry on, and report the
    // mark only if the rollback then leaves something behind (else there is nothing to recover).
    let unmarked: { name: string; error: string } | null = null;
    if (marked) {
      try {
        await this.zfs.set(marked.name, { [PROP.phase]: 'rolling-back' });
      } catch (e) {
        unmarked = { name: `${marked.name} ${PROP.phase}=rolling-back`, error: errText(e) };
      }
    }
    faultPoint('zfs.rollback.marked');
    // After both renames: the new generation sits at P/<repo>; put it back at -sync-.
    if (live && live.tx === tx && old && !sync) {
      await step(
        `rename ${d} → ${n.sync}`,
        async () => {
          await this.unmountIfMounted(d);
          await this.zfs.rename(d, n.sync);
        },
        false,
      );
      live = undefined;
      sync = { name: n.sync, origin: '-', mounted: false, mountpoint: '-' };
    }
    // Between the renames (or after both, undone above): the old generation goes back to P/<repo>.
    if (!live && old) {
      await step(
        `rename ${n.old} → ${d}`,
        async () => {
          await this.unmountIfMounted(n.old);
          await this.zfs.rename(n.old, d);
        },
        false,
      );
    }
    // If the clone owns history (promoted), give it back to the live dataset.
    await step(
      `promote ${d}`,
      async () => {
        if (!(await this.zfs.exists(d))) return;
        const origin = (await this.zfs.list([d], ['origin']))[0]?.['origin'] ?? '-';
        if (origin === `${n.sync}@sync-temp-${tx}`) {
          await this.unmountIfMounted(n.sync);
          await this.zfs.promote(d);
          faultPoint('zfs.rollback.after-promote');
        }
      },
      false,
    );
    if (sync) await step(n.sync, () => this.zfs.destroy(n.sync, { recursive: true }));
    await step(n.temp, async () => {
      if (await this.zfs.exists(n.temp)) await this.zfs.destroy(n.temp);
    });
    await step(
      `mount ${d}`,
      async () => {
        if (await this.zfs.exists(d)) await this.mountIfUnmounted(d);
      },
      false,
    );
    // P/<repo> is back, so an -old-<tx> still here was never ours (we only ever rename P/<repo> to it)
    await step(
      n.old,
      async () => {
        if (old && (await this.zfs.exists(n.old)) && (await this.zfs.exists(d))) {
          throw new Error(
            `${n.old} was not made by transaction ${tx} (it blocked the commit); inspect and remove it by hand`,
          );
        }
      },
      false,
    );
    if (unmarked && report.leftovers.length) report.leftovers.unshift(unmarked);
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
    // read-only clones made by readSnapshotFile whose process is gone (from the same listing)
    for (const v of this.viewsIn(objs)) {
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

  async viewClones(): Promise<ViewClone[]> {
    const rows = await this.zfs.list([this.parent], ['name', PROP.view, 'mountpoint'], {
      depth: 1,
      types: ['filesystem'],
    });
    return this.viewsIn(
      rows.map((r) => ({ name: r['name'] ?? '', view: r[PROP.view], mountpoint: r['mountpoint'] ?? '' })),
    );
  }

  private viewsIn(objs: { name: string; view?: string | undefined; mountpoint: string }[]): ViewClone[] {
    // exactly `<repo>-view-sN-<8 hex>` (remote-fs cloneView): a prefix test would also take
    // the views of a repository named `<repo>-view`
    const own = new RegExp(`^${escapeRegExp(this.dataset)}-view-s[1-9][0-9]*-[0-9a-f]{8}$`);
    return objs
      .filter((o) => own.test(o.name) && o.view && o.view !== '-')
      .map((o) => {
        const [kind = '', pid = '0'] = (o.view ?? '').split('.');
        return { name: o.name, kind, pid: Number(pid), mountpoint: o.mountpoint };
      });
  }
}

/** A clone of an @sN made to read old bytes or mount a snapshot (dsg:view=<kind>.<pid>). */
export interface ViewClone {
  name: string;
  kind: string;
  pid: number;
  mountpoint: string;
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

/** The dataset vanished between two zfs calls of one look. */
function isGone(e: unknown): boolean {
  return e instanceof ZfsOperationError && /does not exist/.test(e.stderr ?? '');
}

/** A failure a reader sees in a commit's rename window: the dataset vanished, or is unmounted. */
function isInWindow(e: unknown): e is Error {
  return isGone(e) || (e instanceof DsgError && e.code === 'ZFS_NOT_MOUNTED');
}

/** Every @sN below the head is there, only the head's is not: dsg's own commit before its snapshot step. */
function onlyHeadUnsnapshotted(st: RepositoryState): boolean {
  const n = snapshotNumber(st.head);
  if (n === null || st.snapshots.has(n)) return false;
  for (let k = 1; k < n; k++) if (!st.snapshots.has(k)) return false;
  return true;
}
