import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  archivePath,
  assertSnapshotMessage,
  CONFIG_BASE,
  LAST_SYNC,
  STAT_CACHE,
  SYNC_MESSAGES,
  faultPoint,
  newTransactionId,
  nextSnapshotId,
  NotFoundError,
  ValidationError,
  type ByteStream,
  type ClientFilesystem,
  type ExpectedFile,
  type ProgressListener,
  type RemoteRepository,
  type TransactionId,
  type Transport,
} from '@dsg/contracts';
import {
  buildSnapshot,
  classify,
  CONFIG_FILE,
  compressArchive,
  conflictBackupName,
  entriesEqual,
  entriesHash,
  hashBytes,
  Manifest,
  parseManifest,
  parseSyncMessages,
  projectScope,
  readManifestFile,
  scanProject,
  serializeManifest,
  serializeSyncMessages,
  SYNC_MESSAGES_VERSION,
  type FileEntry,
  type ManifestEntry,
  type PathPlan,
  type ScanResult,
  type SyncAction,
  type SyncMessages,
} from '@dsg/manifest';
import { InvalidNamesError, RemoteMovedError, SyncConflictError } from './errors.js';
import { archivesToBackfill } from './archive-backfill.js';
import { partitionByScope, type HeldBack } from './held-back.js';
import { defaultLogger, type TransactionLogger } from './logger.js';
import { forEachLimited } from './pool.js';
import { counted, once, readAll } from './streams.js';
import { configSides, readSharedConfig, withoutConfigEntry, type SharedConfig } from './shared-config.js';
import { Transaction } from './transaction.js';

// where the metadata lives: contracts' one layout (re-exported: the engine's public names since 0.1)
export { archivePath, LAST_SYNC, STAT_CACHE, SYNC_MESSAGES } from '@dsg/contracts';
/**
 * Transfers in flight. A transfer of many small files is bound by round trips
 * (each file is a request with its own reply), not bytes: first sync of 1000
 * files over SSH, 5 runs each, 16 vs 4 in flight: 5.43 vs 6.56 s to ZFS,
 * 5.47 vs 7.50 s to posix, same peak RSS (bench w1 quick, 2026-11-27).
 */
export const DEFAULT_CONCURRENCY = 16;
/** stageMeta takes paths relative to `.dsg/`. */
const metaRel = (p: string): string => p.slice('.dsg/'.length);

export interface ProjectSpec {
  root: string;
  name: string;
  dataDirs: string[];
  ignore: { names: string[]; suffixes: string[]; paths: string[] };
  /** user id (email) written into manifests */
  user: string;
  timeZone?: string;
  projectConfig: Record<string, unknown> | null;
}

export interface SyncPlan {
  /** every path in L ∪ C ∪ R with its state and action, sorted by path */
  paths: PathPlan[];
  local: Manifest;
  cache: Manifest;
  remote: Manifest;
  remoteExists: boolean;
  /** R's snapshot id (null when the repository does not exist): the head this plan was made against */
  remoteSnapshotId: string | null;
  /** R's last-sync.json exactly as read (becomes the archive entry of the next snapshot) */
  remoteManifestBytes: Buffer | null;
  /** paths the scan could not represent (refused names, bad links, special files, case twins): sync refuses while any exist */
  invalid: { path: string; reason: string }[];
  /**
   * repository entries this client never writes (outside its data dirs,
   * inside .git/.dsg, unsafe links, case twins): not in `paths`, never
   * downloaded or deleted, carried into the next snapshot as they are
   */
  heldBack: HeldBack[];
  /** R's entries at the held-back paths */
  carried: ManifestEntry[];
  conflicts: PathPlan[];
  counts: Record<SyncAction, number>;
  /** `.dsgconfig.yml` here, in the repository (its root copy) and as last synced: it is a path of `paths`, never a manifest entry */
  config: SharedConfig;
}

export interface SyncResult {
  /**
   * nothing: no change. cache-only: last-sync.json rewritten locally.
   * local-only: the repository needs no change (downloads / local deletes
   * only): applied on the client alone, no new snapshot. snapshot: one
   * transaction made a new snapshot. clone. dry-run: plan only.
   */
  kind: 'nothing' | 'cache-only' | 'local-only' | 'snapshot' | 'clone' | 'dry-run';
  /** the new snapshot (snapshot), or the one the client now matches (cache-only, clone) */
  snapshotId: string | null;
  transactionId: string | null;
  plan: SyncPlan;
  uploaded: string[];
  downloaded: string[];
  deletedLocal: string[];
  deletedRemote: string[];
  /** `<name>~<YYYYMMDDTHHMMSS>~` copies of local files that lost a conflict resolution */
  conflictBackups: string[];
  bytes: { uploaded: number; downloaded: number };
}

export type Resolution = 'L' | 'C' | 'R';

/** What a transfer must arrive as; the project config has no mtime to apply (it is not a manifest entry). */
const expectedOf = (e: FileEntry): ExpectedFile => ({ hash: e.hash, size: e.filesize, ...(e.mtime ? { mtime: e.mtime } : {}) });

const errorMessage = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/** R: the repository's current manifest. Missing or invalid while the repository exists is an ERROR, never "empty". */
async function readRemoteManifest(remote: RemoteRepository): Promise<{ exists: boolean; manifest: Manifest; bytes: Buffer | null }> {
  if (!(await remote.exists())) return { exists: false, manifest: Manifest.empty(), bytes: null };
  const s = await remote.readFile(LAST_SYNC);
  if (!s) {
    throw new ValidationError(`the repository has no ${LAST_SYNC}`, { file: `repository:${LAST_SYNC}` }, {
      code: 'REMOTE_MANIFEST',
      recoveryHint: 'The repository is damaged; check it with `dsg validate-snapshot` before syncing.',
    });
  }
  const bytes = await readAll(s);
  const manifest = parseManifest(bytes, `repository:${LAST_SYNC}`);
  if (!manifest.metadata) {
    throw new ValidationError(`the repository's ${LAST_SYNC} has no metadata`, { file: `repository:${LAST_SYNC}`, field: 'metadata' }, {
      code: 'REMOTE_MANIFEST',
      recoveryHint: 'The repository is damaged; check it with `dsg validate-snapshot` before syncing.',
    });
  }
  return { exists: true, manifest, bytes };
}

/**
 * R's entries must hash to its recorded entries_hash: a manifest edited on the
 * server (an entry added, a hash or path changed) is refused before anything
 * is downloaded or chained onto it. Skipped when R is the very manifest this
 * client already holds as C (same bytes: it was checked when it arrived).
 */
function assertRemoteIntegrity(remote: Manifest, cache?: Manifest): void {
  const md = remote.metadata;
  if (!md || remote === cache) return;
  const eh = entriesHash(remote.entries.values());
  if (eh !== md.entries_hash) {
    throw new ValidationError(
      `the repository's ${LAST_SYNC} (${md.snapshot_id}) does not match its entries_hash (recorded ${md.entries_hash}, entries hash to ${eh}): it was changed outside dsg or is damaged`,
      { file: `repository:${LAST_SYNC}`, field: 'metadata.entries_hash' },
      {
        code: 'REMOTE_MANIFEST',
        recoveryHint: 'Nothing was changed. Run `dsg validate-chain`, and restore the repository from its last good snapshot before syncing.',
      },
    );
  }
}

/** C: this client's last-sync.json; absent → empty (never synced); invalid → error. */
async function readCacheManifest(root: string, remote?: { manifest: Manifest; bytes: Buffer | null }): Promise<Manifest> {
  const file = path.join(root, LAST_SYNC);
  if (remote?.bytes) {
    // After a sync C and R are the same bytes (the no-change case of status
    // and sync): parsing a large manifest twice was a fifth of `dsg status`.
    // Manifests are never mutated after parsing, so sharing is safe.
    let local: Buffer;
    try {
      local = await readFile(file);
    } catch {
      return (await readManifestFile(file)) ?? Manifest.empty(); // ENOENT → empty; else its DsgError
    }
    return local.equals(remote.bytes) ? remote.manifest : parseManifest(local, file);
  }
  return (await readManifestFile(file)) ?? Manifest.empty();
}

/** Scan local, read C and R, classify. Reads only (the stat cache is the one file it rewrites). */
export async function planSync(o: {
  project: ProjectSpec;
  remote: RemoteRepository;
  onProgress?: ProgressListener;
  /** whether two project configs mean the same to this client (see SyncOptions.sameConfig) */
  sameConfig?: (local: Buffer, remote: Buffer) => boolean;
}): Promise<SyncPlan> {
  const { project } = o;
  const r = await readRemoteManifest(o.remote);
  const cache = await readCacheManifest(project.root, r);
  assertRemoteIntegrity(r.manifest, cache); // before the scan: a damaged repository is refused without touching anything
  const config = await readSharedConfig(project.root, o.remote, r.exists, cache, o.sameConfig);
  const scan = await scanProject({
    root: project.root,
    dataDirs: project.dataDirs,
    ignore: project.ignore,
    user: project.user,
    ...(project.timeZone ? { timeZone: project.timeZone } : {}),
    statCacheFile: path.join(project.root, STAT_CACHE),
    previous: cache,
    ...(o.onProgress ? { onProgress: o.onProgress } : {}),
  });
  return makePlan(scan, cache, r, projectScope(project.dataDirs), config, project.user);
}

/** The three-way classification of L, C and R, after holding back what this client must never write. */
function makePlan(
  scan: ScanResult,
  cache: Manifest,
  r: { exists: boolean; manifest: Manifest; bytes: Buffer | null },
  scope: ReturnType<typeof projectScope>,
  config: SharedConfig,
  user: string,
): SyncPlan {
  const part = partitionByScope(scan.manifest, withoutConfigEntry(cache), withoutConfigEntry(r.manifest), scope);
  // the project config is compared like a file, beside the manifest entries
  const sides = configSides(config, user);
  const plus = (m: Manifest, extra: ManifestEntry[]): Manifest => (extra.length ? new Manifest([...m.entries.values(), ...extra], m.metadata) : m);
  const paths = classify(plus(part.local, sides.local), plus(part.cache, sides.cache), plus(part.remote, sides.remote));
  const counts = { none: 0, upload: 0, download: 0, delete_local: 0, delete_remote: 0, cache_only: 0, conflict: 0 };
  for (const p of paths) counts[p.action]++;
  return {
    paths,
    local: scan.manifest,
    cache,
    remote: r.manifest,
    remoteExists: r.exists,
    remoteSnapshotId: r.manifest.metadata?.snapshot_id ?? null,
    remoteManifestBytes: r.bytes,
    invalid: [...scan.warnings, ...part.localTwins].sort((x, y) => (x.path < y.path ? -1 : x.path > y.path ? 1 : 0)),
    heldBack: part.heldBack,
    carried: part.carried,
    conflicts: paths.filter((p) => p.action === 'conflict'),
    counts,
    config,
  };
}

type Source = { from: 'local' } | { from: 'remote' } | { from: 'snapshot'; snapshotId: string };
interface Transfer {
  path: string;
  entry: ManifestEntry;
  source: Source;
}
interface Ops {
  uploads: Transfer[];
  downloads: Transfer[];
  deleteLocal: string[];
  deleteRemote: string[];
  /** local losers of a conflict resolution, copied to `<name>~<ts>~` */
  backups: ManifestEntry[];
  /** the entries of the next manifest */
  merged: Map<string, ManifestEntry>;
  cacheChange: boolean;
}

/**
 * What the plan (plus resolutions) means in transfers. Unresolved conflicts →
 * SyncConflictError. `backup` false: a losing local version is replaced
 * without a `<name>~<ts>~` copy (user config backup_on_conflict: false).
 */
export function resolveOps(plan: SyncPlan, user: string, resolutions?: ReadonlyMap<string, Resolution>, backup = true): Ops {
  const ops: Ops = { uploads: [], downloads: [], deleteLocal: [], deleteRemote: [], backups: [], merged: new Map(), cacheChange: false };
  const unresolved: PathPlan[] = [];
  const resolved: { plan: PathPlan; resolution: Resolution }[] = [];
  const cacheId = plan.cache.metadata?.snapshot_id ?? null;
  const keep = (e: ManifestEntry): void => void ops.merged.set(e.path, e);
  const upload = (e: ManifestEntry, source: Source = { from: 'local' }): void => {
    const mine = source.from === 'local' ? { ...e, user } : e;
    ops.uploads.push({ path: e.path, entry: mine, source });
    keep(mine);
  };
  const download = (e: ManifestEntry, source: Source = { from: 'remote' }): void => {
    ops.downloads.push({ path: e.path, entry: e, source });
    keep(e);
  };
  for (const p of plan.paths) {
    switch (p.action) {
      case 'none':
        keep((p.remote ?? p.local)!);
        break;
      case 'download':
        download(p.remote!);
        break;
      case 'upload':
        upload(p.local!);
        break;
      case 'delete_local':
        ops.deleteLocal.push(p.path);
        break;
      case 'delete_remote':
        ops.deleteRemote.push(p.path);
        break;
      case 'cache_only':
        ops.cacheChange = true;
        if (p.remote) keep(p.remote);
        break;
      case 'conflict': {
        const res = resolutions?.get(p.path);
        if (!res) {
          unresolved.push(p);
          break;
        }
        resolved.push({ plan: p, resolution: res });
        if (p.path === CONFIG_FILE && res === 'C') {
          throw new ValidationError(`${CONFIG_FILE} can be resolved only with L (keep yours) or R (take the repository's)`, { path: p.path });
        }
        if (res === 'L') {
          if (p.local) upload(p.local);
          else if (p.remote) ops.deleteRemote.push(p.path);
        } else if (res === 'R') {
          if (p.local && backup) ops.backups.push(p.local);
          if (p.remote) download(p.remote);
          else if (p.local) ops.deleteLocal.push(p.path);
        } else {
          const c = p.cache;
          if (backup && p.local && (!c || !entriesEqual(p.local, c))) ops.backups.push(p.local);
          if (c) {
            if (cacheId === null) throw new ValidationError(`cannot restore ${p.path}: ${LAST_SYNC} has no snapshot id`, { path: p.path });
            const src: Source = { from: 'snapshot', snapshotId: cacheId };
            if (!p.local || !entriesEqual(p.local, c)) ops.downloads.push({ path: c.path, entry: c, source: src });
            if (!p.remote || !entriesEqual(p.remote, c)) ops.uploads.push({ path: c.path, entry: c, source: src });
            keep(c);
          } else {
            if (p.local) ops.deleteLocal.push(p.path);
            if (p.remote) ops.deleteRemote.push(p.path);
          }
        }
        break;
      }
    }
  }
  if (unresolved.length) throw new SyncConflictError(unresolved, resolved);
  for (const e of plan.carried) keep(e); // held back: the repository keeps them as they are
  // the project config travels beside the manifest: transferred, never an entry, never backed up
  // (a losing local config is shown as a diff by the CLI before it is replaced)
  ops.merged.delete(CONFIG_FILE);
  ops.backups = ops.backups.filter((b) => b.path !== CONFIG_FILE);
  return ops;
}

const hasTransfers = (o: Ops): boolean =>
  o.uploads.length + o.downloads.length + o.deleteLocal.length + o.deleteRemote.length + o.backups.length > 0;


async function readSyncMessages(remote: RemoteRepository): Promise<SyncMessages> {
  const s = await remote.readFile(SYNC_MESSAGES);
  if (!s) return { metadata_version: SYNC_MESSAGES_VERSION, snapshots: {} };
  return parseSyncMessages((await readAll(s)).toString('utf8'), `repository:${SYNC_MESSAGES}`);
}

async function headOf(remote: RemoteRepository): Promise<string | null> {
  if (!(await remote.exists())) return null;
  return (await remote.listSnapshots()).at(-1)?.snapshotId ?? null;
}

export interface SyncOptions {
  project: ProjectSpec;
  clientFs: ClientFilesystem;
  remote: RemoteRepository;
  transport: Transport;
  message: string;
  dryRun?: boolean;
  resolutions?: Map<string, Resolution>;
  /** keep a local version that loses a resolution as `<name>~<ts>~` (default true; cli.md backup_on_conflict) */
  backupOnConflict?: boolean;
  onProgress?: ProgressListener;
  /**
   * Called with the repository's `.dsgconfig.yml` before a sync would download
   * it over the local one; throw to refuse the sync (a config this client
   * cannot read would lock the working copy out of every later command).
   */
  validateProjectConfig?: (content: Buffer) => void | Promise<void>;
  /**
   * Whether two `.dsgconfig.yml`s mean the same to this client (same data
   * dirs and ignore rules; connection blocks never count). With no synced
   * copy to compare against (the original's working copies), two configs
   * that differ only in form are left alone instead of being a conflict.
   */
  sameConfig?: (local: Buffer, remote: Buffer) => boolean;
  /**
   * The caller's own check of the repository, run with the repository locked
   * and before the plan (a dry run: before the plan, unlocked): reads there
   * cannot race another client's commit. Throw to refuse the sync.
   */
  beforePlan?: () => Promise<void>;
  /** the head a plan shown to the user was made against; a different head under the lock → RemoteMovedError */
  expectedRemoteSnapshot?: string | null;
  concurrency?: number;
  logger?: TransactionLogger;
  transactionId?: TransactionId;
  now?: () => Date;
}

/**
 * One sync: lock the repository, re-plan under the lock, refuse on conflicts
 * (unless every conflict has a resolution), then either nothing; a
 * client-only apply when the repository needs no change (downloads, local
 * deletes, cache-only states: last-sync.json becomes R); or ONE
 * Transaction: transfers, deletes on both sides, the merged manifest with
 * its chain hash, sync-messages and archive on both sides, commit. Ends the
 * transport (the session is consumed) and releases the lock in every case.
 * init is this with a repository that does not exist yet (always → s1).
 */
export async function runSync(o: SyncOptions): Promise<SyncResult> {
  const { project, remote, transport } = o;
  const log = o.logger ?? defaultLogger;
  const now = o.now ?? ((): Date => new Date());
  const tx = o.transactionId ?? newTransactionId(now());
  let locked = false;
  const unlock = async (): Promise<void> => {
    if (!locked) return;
    locked = false;
    await remote.unlock().catch((e: unknown) => log.error(`could not release the repository lock: ${errorMessage(e)}`));
  };
  // The Transaction ends the transport; the lock must be released over it first.
  const session: Transport = {
    begin: () => transport.begin(),
    end: async () => {
      await unlock();
      await transport.end();
    },
  };
  try {
    assertSnapshotMessage(o.message); // up front: past the point of no return ZFS could not store it
    if (o.dryRun) {
      await o.beforePlan?.();
      const plan = await planSync(o);
      return emptyResult('dry-run', plan, null, plan.remoteSnapshotId);
    }
    await remote.lock({ user: project.user, host: os.hostname(), pid: process.pid, since: now().toISOString(), transactionId: tx });
    locked = true;
    await o.beforePlan?.();
    const plan = await planSync(o);
    faultPoint('sync.after-scan');
    if (o.expectedRemoteSnapshot !== undefined && o.expectedRemoteSnapshot !== plan.remoteSnapshotId) {
      throw new RemoteMovedError(o.expectedRemoteSnapshot, plan.remoteSnapshotId);
    }
    if (plan.invalid.length) throw new InvalidNamesError(plan.invalid);
    if (!plan.remoteExists && plan.cache.entries.size > 0) {
      throw new NotFoundError(`repository ${project.name} does not exist, but this project has synced with it before`, {
        recoveryHint: 'Check the repository settings in .dsgconfig.yml; refusing to treat the missing repository as empty (that would delete your files).',
      });
    }
    const ops = resolveOps(plan, project.user, o.resolutions, o.backupOnConflict ?? true);
    await checkIncomingConfig(o, ops);
    // init always makes s1, even of an empty project: the repository must come to exist
    if (plan.remoteExists && !hasTransfers(ops) && !ops.cacheChange) return emptyResult('nothing', plan, null, plan.remoteSnapshotId);
    if (plan.remoteExists && ops.uploads.length === 0 && ops.deleteRemote.length === 0) {
      // The repository already holds the merged state: a new snapshot would only repeat R.
      return await applyClientOnly(o, tx, plan, ops, now());
    }
    return await runTransaction(o, session, tx, plan, ops, now(), log);
  } finally {
    await session.end().catch((e: unknown) => log.error(`could not end the transport: ${errorMessage(e)}`));
  }
}

/** The incoming project config, checked by the caller before anything is staged. */
async function checkIncomingConfig(o: SyncOptions, ops: Ops): Promise<void> {
  const d = ops.downloads.find((t) => t.path === CONFIG_FILE);
  if (!d || d.entry.type !== 'file' || !o.validateProjectConfig) return;
  const bytes = await readAll(await openSource(o.remote, o.clientFs, d));
  // bytes that do not match the manifest are refused by the download's own hash check
  if (hashBytes(bytes) === d.entry.hash) await o.validateProjectConfig(bytes);
}

function emptyResult(kind: SyncResult['kind'], plan: SyncPlan, tx: string | null, snapshotId: string | null): SyncResult {
  return {
    kind,
    snapshotId,
    transactionId: tx,
    plan,
    uploaded: [],
    downloaded: [],
    deletedLocal: [],
    deletedRemote: [],
    conflictBackups: [],
    bytes: { uploaded: 0, downloaded: 0 },
  };
}

/**
 * The repository needs no change: apply downloads, local deletes and the
 * new cache (R exactly) on the client alone, still staged, journaled and
 * backed up by the ClientFilesystem. Cache-only plans are the case with no
 * file to move.
 */
async function applyClientOnly(o: SyncOptions, tx: TransactionId, plan: SyncPlan, ops: Ops, at: Date): Promise<SyncResult> {
  const { clientFs, remote } = o;
  const result = emptyResult(hasTransfers(ops) ? 'local-only' : 'cache-only', plan, tx, plan.remoteSnapshotId);
  await clientFs.begin(tx);
  try {
    await stageClientChanges(o, tx, ops, at, result, progressCounter(o, ops));
    await stageConfigBase(clientFs, tx, plan, ops, 'client');
    const bytes = plan.remoteManifestBytes ?? Buffer.from(serializeManifest(Manifest.empty()));
    await clientFs.stageMeta(tx, metaRel(LAST_SYNC), bytes);
    const sm = await remote.readFile(SYNC_MESSAGES);
    if (sm) await clientFs.stageMeta(tx, metaRel(SYNC_MESSAGES), await readAll(sm));
    if (plan.remoteSnapshotId) await clientFs.setRemoteSnapshot(tx, plan.remoteSnapshotId);
    await clientFs.commit(tx);
  } catch (e) {
    await clientFs.rollback(tx);
    throw e;
  }
  return result;
}

type Emit = (phase: 'upload' | 'download' | 'delete' | 'commit', file?: { path: string; done: boolean }) => void;
interface Progress {
  emit: Emit;
  count: (n: number) => void;
}

function progressCounter(o: { onProgress?: ProgressListener }, ops: Ops): Progress {
  const size = (e: ManifestEntry): number => (e.type === 'file' ? e.filesize : 0);
  const all = [...ops.uploads, ...ops.downloads];
  const totalFiles = all.length;
  const totalBytes = all.reduce((n, t) => n + size(t.entry), 0);
  let files = 0;
  let bytes = 0;
  return {
    count: (n) => void (bytes += n),
    emit: (phase, file) => {
      if (file?.done) files++;
      o.onProgress?.({ phase, files, totalFiles, bytes, totalBytes, ...(file ? { path: file.path } : {}) });
    },
  };
}

/** Conflict-loser copies, downloads (bounded concurrency) and local deletes, all into the client's staging. */
async function stageClientChanges(o: SyncOptions, tx: TransactionId, ops: Ops, at: Date, result: SyncResult, pr: Progress): Promise<void> {
  const { clientFs, remote } = o;
  for (const b of ops.backups) {
    const name = conflictBackupName(b.path, at);
    if (b.type === 'link') await clientFs.stageLink(tx, name, b.reference);
    else await clientFs.stageFile(tx, name, clientFs.readFile(b.path), { hash: b.hash, size: b.filesize, mtime: b.mtime });
    result.conflictBackups.push(name);
  }
  await forEachLimited(ops.downloads, o.concurrency ?? DEFAULT_CONCURRENCY, async (d) => {
    if (d.entry.type === 'link') await clientFs.stageLink(tx, d.path, d.entry.reference);
    else {
      const src = counted(await openSource(remote, clientFs, d), pr.count);
      await clientFs.stageFile(tx, d.path, src, expectedOf(d.entry));
      result.bytes.downloaded += d.entry.filesize;
    }
    result.downloaded.push(d.path);
    pr.emit('download', { path: d.path, done: true });
  });
  for (const p of ops.deleteLocal) {
    await clientFs.stageDelete(tx, p);
    result.deletedLocal.push(p);
    pr.emit('delete', { path: p, done: false });
  }
}

/**
 * The project config both sides hold once this apply commits: the base of
 * the next comparison. `snapshot`: this apply is a repository transaction,
 * which also writes the root copy a repository lacks. `clone`: a repository
 * without a root copy gave the clone the config the caller wrote for it;
 * that is its base, so a root copy that appears later is downloaded, not a
 * conflict.
 */
async function stageConfigBase(
  clientFs: ClientFilesystem,
  tx: TransactionId,
  plan: SyncPlan,
  ops: Pick<Ops, 'uploads' | 'downloads'>,
  mode: 'client' | 'snapshot' | 'clone',
): Promise<void> {
  const c = plan.config;
  const moved = (list: Transfer[]): boolean => list.some((t) => t.path === CONFIG_FILE);
  let after: Buffer | null;
  if (moved(ops.downloads)) after = c.remote;
  else if (moved(ops.uploads) || (!c.remote && mode !== 'client')) after = c.local;
  else after = c.local && c.remote?.equals(c.local) ? c.local : null;
  if (after) await clientFs.stageMeta(tx, metaRel(CONFIG_BASE), after);
}

async function openSource(remote: RemoteRepository, clientFs: ClientFilesystem, t: Transfer): Promise<ByteStream> {
  if (t.source.from === 'local') return clientFs.readFile(t.path);
  const s = t.source.from === 'remote' ? await remote.readFile(t.path) : await remote.readSnapshotFile(t.source.snapshotId, t.path);
  if (!s) {
    throw new NotFoundError(
      `${t.path} is missing from the repository${t.source.from === 'snapshot' ? ` snapshot ${t.source.snapshotId}` : ''}`,
      { recoveryHint: 'The repository changed or is damaged; run `dsg status` and sync again.' },
    );
  }
  return s;
}

async function runTransaction(
  o: SyncOptions,
  session: Transport,
  tx: TransactionId,
  plan: SyncPlan,
  ops: Ops,
  at: Date,
  log: TransactionLogger,
): Promise<SyncResult> {
  const { project, clientFs, remote } = o;
  const result = emptyResult('snapshot', plan, tx, null);
  const pr = progressCounter(o, ops);

  const t = new Transaction(tx, clientFs, remote, session, { logger: log });
  await t.run(async () => {
    await forEachLimited(ops.uploads, o.concurrency ?? DEFAULT_CONCURRENCY, async (u) => {
      if (u.entry.type === 'link') await remote.writeLink(tx, u.path, u.entry.reference);
      else {
        const src = counted(await openSource(remote, clientFs, u), pr.count);
        await remote.writeFile(tx, u.path, src, expectedOf(u.entry));
        result.bytes.uploaded += u.entry.filesize;
      }
      result.uploaded.push(u.path);
      faultPoint('sync.after-upload'); // the first upload to finish reaches it
      pr.emit('upload', { path: u.path, done: true });
    });
    await stageClientChanges(o, tx, ops, at, result, pr);
    const c = plan.config;
    if (!c.remote && c.local) {
      // a repository without a root copy (new, or made by the original) gets this one with the snapshot
      await remote.writeFile(tx, CONFIG_FILE, once(c.local), { hash: hashBytes(c.local), size: c.local.byteLength });
      result.uploaded.push(CONFIG_FILE);
    }
    await stageConfigBase(clientFs, tx, plan, ops, 'snapshot');
    faultPoint('sync.after-staging');
    for (const p of ops.deleteRemote) {
      await remote.deleteFile(tx, p);
      result.deletedRemote.push(p);
      pr.emit('delete', { path: p, done: false });
    }

    // The merged manifest, chained to R, and the metadata files: part of the snapshot on both sides.
    const snapshotId = nextSnapshotId(plan.remoteSnapshotId);
    const manifest = buildSnapshot(ops.merged.values(), {
      snapshotId,
      previous: plan.remote.metadata,
      message: o.message,
      user: project.user,
      createdAt: at,
      projectConfig: project.projectConfig,
      notes: plan.remoteExists ? 'sync' : 'init', // as the original marks them
      ...(project.timeZone ? { timeZone: project.timeZone } : {}),
    });
    const md = manifest.metadata!;
    const messages = plan.remoteExists ? await readSyncMessages(remote) : { metadata_version: SYNC_MESSAGES_VERSION, snapshots: {} };
    // The original's repositories keep a sync-messages.json one snapshot behind last-sync.json: fill in R's own block.
    const prev = plan.remote.metadata;
    const lastWrittenByOriginal = prev !== null && !(prev.snapshot_id in messages.snapshots);
    if (prev && lastWrittenByOriginal) messages.snapshots[prev.snapshot_id] = prev;
    messages.snapshots[snapshotId] = md;
    const meta: [string, Buffer][] = [
      [LAST_SYNC, Buffer.from(serializeManifest(manifest), 'utf8')],
      [SYNC_MESSAGES, Buffer.from(serializeSyncMessages(messages), 'utf8')],
    ];
    if (plan.remoteSnapshotId && plan.remoteManifestBytes) {
      meta.push([archivePath(plan.remoteSnapshotId), compressArchive(plan.remoteManifestBytes.toString('utf8'))]);
    }
    for (const [p, content] of meta) {
      await remote.writeFile(tx, p, once(content), { hash: hashBytes(content), size: content.byteLength });
      await clientFs.stageMeta(tx, metaRel(p), content);
    }
    if (lastWrittenByOriginal) {
      // the original keeps archives only in working copies: give the repository this one's, for every clone
      const skip = new Set([snapshotId, ...(plan.remoteSnapshotId ? [plan.remoteSnapshotId] : [])]);
      for (const [p, content] of await archivesToBackfill(project.root, messages, skip, archivePath)) {
        await remote.writeFile(tx, p, once(content), { hash: hashBytes(content), size: content.byteLength });
      }
    }

    // Optimistic check under the lock: the head is still the one planned against.
    const head = await headOf(remote);
    if (head !== plan.remoteSnapshotId) throw new RemoteMovedError(plan.remoteSnapshotId, head);

    t.setSnapshot({ snapshotId, message: o.message, manifestHash: md.snapshot_hash ?? '', user: project.user, createdAt: md.created_at });
    await clientFs.setRemoteSnapshot(tx, snapshotId);
    faultPoint('sync.before-commit');
    pr.emit('commit');
    result.snapshotId = snapshotId;
  });
  return result;
}

/**
 * Clone: L and C empty (local files equal to R are kept, so an interrupted
 * clone resumes by hash). Read-only on the server: no remote transaction,
 * no lock, no new snapshot — downloads go to staging and only the client
 * side commits. Ends the transport.
 */
export async function runClone(o: {
  project: ProjectSpec;
  clientFs: ClientFilesystem;
  remote: RemoteRepository;
  transport: Transport;
  onProgress?: ProgressListener;
  concurrency?: number;
  transactionId?: TransactionId;
}): Promise<SyncResult> {
  const { project, clientFs, remote } = o;
  const tx = o.transactionId ?? newTransactionId();
  try {
    const r = await readRemoteManifest(remote);
    if (!r.exists) throw new NotFoundError(`repository ${project.name} does not exist`);
    assertRemoteIntegrity(r.manifest);
    const cache = await readCacheManifest(project.root);
    if (cache.entries.size > 0 || cache.metadata) {
      throw new ValidationError(`${project.root} already has ${LAST_SYNC}`, { file: LAST_SYNC }, {
        code: 'ALREADY_CLONED',
        recoveryHint: 'This directory is already a working copy: use `dsg sync`.',
      });
    }
    const scope = projectScope(project.dataDirs);
    const scan = await scanProject({
      root: project.root,
      dataDirs: project.dataDirs,
      ignore: project.ignore,
      user: project.user,
      ...(project.timeZone ? { timeZone: project.timeZone } : {}),
      statCacheFile: path.join(project.root, STAT_CACHE),
    });
    const config = await readSharedConfig(project.root, remote, true, cache);
    const plan = makePlan(scan, cache, r, scope, config, project.user);
    const { paths } = plan;
    // a config of the clone's own that differs from the repository's is not a conflict yet: the first sync compares them
    const conflicts = plan.conflicts.filter((p) => p.path !== CONFIG_FILE);
    if (conflicts.length) throw new SyncConflictError(conflicts);
    const downloads = paths.filter((p) => p.action === 'download').map((p) => p.remote!);
    const result = emptyResult('clone', plan, tx, plan.remoteSnapshotId);
    const totalBytes = downloads.reduce((n, e) => n + (e.type === 'file' ? e.filesize : 0), 0);
    let files = 0;
    let bytes = 0;
    await clientFs.begin(tx);
    try {
      await forEachLimited(downloads, o.concurrency ?? DEFAULT_CONCURRENCY, async (e) => {
        if (e.type === 'link') await clientFs.stageLink(tx, e.path, e.reference);
        else {
          const s = await remote.readFile(e.path);
          if (!s) throw new NotFoundError(`${e.path} is missing from the repository`);
          await clientFs.stageFile(tx, e.path, counted(s, (n) => (bytes += n)), expectedOf(e));
          result.bytes.downloaded += e.filesize;
        }
        files++;
        result.downloaded.push(e.path);
        o.onProgress?.({ phase: 'download', files, totalFiles: downloads.length, bytes, totalBytes, path: e.path });
      });
      await clientFs.stageMeta(tx, metaRel(LAST_SYNC), r.bytes!);
      await stageConfigBase(clientFs, tx, plan, { uploads: [], downloads: downloads.filter((e) => e.path === CONFIG_FILE).map((e) => ({ path: e.path, entry: e, source: { from: 'remote' } })) }, 'clone');
      const sm = await remote.readFile(SYNC_MESSAGES);
      if (sm) {
        const smBytes = await readAll(sm);
        const messages = parseSyncMessages(smBytes.toString('utf8'), `repository:${SYNC_MESSAGES}`);
        await clientFs.stageMeta(tx, metaRel(SYNC_MESSAGES), smBytes);
        for (const id of Object.keys(messages.snapshots)) {
          if (id === plan.remoteSnapshotId) continue;
          const a = await remote.readFile(archivePath(id));
          if (a) await clientFs.stageMeta(tx, metaRel(archivePath(id)), await readAll(a));
        }
      }
      await clientFs.setRemoteSnapshot(tx, plan.remoteSnapshotId!);
      await clientFs.commit(tx);
    } catch (e) {
      await clientFs.rollback(tx);
      throw e;
    }
    return result;
  } finally {
    await o.transport.end();
  }
}
