import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import {
  CONFIG_BASE,
  LAST_SYNC,
  LAST_SYNC_MIRROR,
  LAST_SYNC_WALK,
  NotFoundError,
  STAT_CACHE,
  ValidationError,
  type ProgressListener,
  type RemoteRepository,
} from '@dsg/contracts';
import {
  classify,
  CONFIG_FILE,
  entriesHash,
  hashBytes,
  Manifest,
  parseManifest,
  projectScope,
  readManifestMirrored,
  readMirrorColumns,
  scanProject,
  treeIsLastSync,
  unchangedByRecord,
  walkInputs,
  writeWalkRecord,
  OutsideDataCounter,
  type OutsideData,
  type MirrorColumns,
  type FastStatusOptions,
  type UnchangedTree,
  type WalkRecordSource,
  type ManifestEntry,
  type PathPlan,
  type SyncAction,
} from '@dsg/manifest';
import { partitionByScope, type HeldBack } from './held-back.js';
import { configSides, readSharedConfig, withoutConfigEntry, type SharedConfig } from './shared-config.js';
import { assertSameHistory } from './same-history.js';
import { readAll } from './streams.js';
import type { ProjectSpec } from './sync-run.js';

export interface SyncPlan {
  /** every path in L ∪ C ∪ R with its state and action, sorted by path */
  paths: PathPlan[];
  local: Manifest;
  cache: Manifest;
  remote: Manifest;
  remoteExists: boolean;
  /** R's snapshot id (null when the repository does not exist): the head this plan was made against */
  remoteSnapshotId: string | null;
  /** R's last-sync.json exactly as the repository holds it (the archive entry of the next snapshot); null: no repository */
  remoteManifestBytes: ManifestBytes | null;
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
  /** files here outside every data directory (never synced; the scan counted them) */
  outside: OutsideData;
}

/**
 * What `dsg status` shows: a SyncPlan's paths (only those whose action is
 * not `none` when the fast path answered: an unchanged entry has nothing to
 * show), the refused and held-back paths, R's snapshot and the shared config.
 */
export type StatusPlan = Pick<
  SyncPlan,
  'paths' | 'invalid' | 'heldBack' | 'remoteSnapshotId' | 'config' | 'outside'
> & {
  /** the last sync's created_at (null: never synced) */
  lastSyncAt: string | null;
  /** whether the fast path answered (tests and profiles ask; the answer is the same either way) */
  fast: boolean;
};

const statusOf = (p: SyncPlan): StatusPlan => ({
  paths: p.paths,
  invalid: p.invalid,
  heldBack: p.heldBack,
  remoteSnapshotId: p.remoteSnapshotId,
  config: p.config,
  outside: p.outside,
  lastSyncAt: p.cache.metadata?.created_at ?? null,
  fast: false,
});

export interface PlanOptions {
  project: ProjectSpec;
  remote: RemoteRepository;
  onProgress?: ProgressListener;
  /** whether two project configs mean the same to this client (see SyncOptions.sameConfig) */
  sameConfig?: (local: Buffer, remote: Buffer) => boolean;
}

interface RemoteSide {
  exists: boolean;
  manifest: Manifest;
  bytes: ManifestBytes | null;
}

/**
 * A manifest file's size and SHA-256, and its bytes when asked: R's bytes
 * are needed only by a sync's last step (the next snapshot's archive, a
 * client-only apply's or a clone's last-sync.json), so they are not held
 * through the scan and the plan (100k entries: 23 MB).
 */
export interface ManifestBytes {
  size: number;
  sha256: string;
  read(): Promise<Buffer>;
}

/** Bytes already in hand (R as downloaded). */
const heldBytes = (bytes: Buffer): ManifestBytes => ({
  size: bytes.length,
  sha256: createHash('sha256').update(bytes).digest('hex'),
  read: () => Promise.resolve(bytes),
});

/**
 * This copy's last-sync.json, read again when asked and refused unless it is
 * still the bytes of that size and SHA-256: another dsg in this working copy
 * may have synced meanwhile, and an archive must hold R exactly.
 */
const lastSyncBytes = (root: string, size: number, sha256: string): ManifestBytes => ({
  size,
  sha256,
  read: async () => {
    const bytes = await readOrNull(path.join(root, LAST_SYNC));
    if (bytes?.length !== size || createHash('sha256').update(bytes).digest('hex') !== sha256) {
      throw new ValidationError(
        `${LAST_SYNC} changed while this command ran (another dsg command in this working copy?)`,
        { file: LAST_SYNC },
        { code: 'HASH_MISMATCH', recoveryHint: 'Nothing was committed; run the command again.' },
      );
    }
    return bytes;
  },
});

/**
 * Scan local, read C and R, classify. Reads only (the stat cache is the one
 * file it rewrites). When the repository's head manifest is this copy's last
 * sync byte for byte (asked by digest) R is C, and nothing else is read of
 * it. Otherwise it first refuses a working copy whose last sync is not in the
 * repository's history (DIVERGED_HISTORY), then reads R: runSync plans under
 * the lock, where these reads cannot race another client's commit.
 */
export async function planSync(options: PlanOptions): Promise<SyncPlan> {
  const same = await headIsLastSync(options.project.root, options.remote);
  if (same) return planAgainst(options, same, same.manifest, await remoteConfig(options, same, same.manifest));
  await assertSameHistory(options.project.root, options.remote);
  const r = await readRemoteManifest(options.remote);
  const cache = await readCacheManifest(options.project.root, r);
  assertRemoteIntegrity(r.manifest, cache); // before the scan: a damaged repository is refused without touching anything
  return planAgainst(options, r, cache, await remoteConfig(options, r, cache));
}

const remoteConfig = (o: PlanOptions, r: RemoteSide, cache: Manifest): Promise<SharedConfig> =>
  readSharedConfig(o.project.root, o.remote, r.exists, cache, o.sameConfig);

/**
 * R when the repository's last-sync.json is byte for byte this copy's own
 * (C): asked by digest (`fileDigest`, one small request), so the manifest is
 * neither downloaded nor parsed twice — the everyday `dsg status` with
 * nothing new in the repository. R's head is then C's own snapshot, so the
 * history check has nothing to refuse, and R's bytes are C's (the archive
 * entry of the next snapshot). Null whenever that is not proved (no digest
 * from this repository, never synced, another digest or size): the caller
 * reads R as before. runSync plans under the lock, so the digest a sync
 * acts on cannot race another client's commit.
 */
async function headIsLastSync(root: string, remote: RemoteRepository): Promise<RemoteSide | null> {
  if (!remote.fileDigest) return null;
  // this copy's last sync is read while the agent hashes its own
  const [theirs, mine] = await Promise.all([remote.fileDigest(LAST_SYNC), readLastSync(root)]);
  if (!theirs || !mine || theirs.size !== mine.size || theirs.sha256 !== mine.sha256) return null;
  if (!mine.manifest.metadata) return null; // refused with the repository's own message by the full read
  return { exists: true, manifest: mine.manifest, bytes: lastSyncBytes(root, mine.size, mine.sha256) };
}

/**
 * This copy's last sync (C) with its size and SHA-256; null when it never
 * synced. Read through its binary mirror (`.dsg/last-sync.bin`), so a large
 * manifest is parsed once per sync, not once per command, and not read at
 * all while the mirror's binding vouches for it.
 */
const readLastSync = (root: string): ReturnType<typeof readManifestMirrored> =>
  readManifestMirrored(path.join(root, LAST_SYNC), path.join(root, LAST_SYNC_MIRROR));

/** A file's bytes; null when it does not exist (any other failure is thrown). */
const readOrNull = (file: string): Promise<Buffer | null> =>
  readFile(file).catch((e: unknown) => {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  });

/**
 * The plan against the last sync only (`dsg status --offline`): R := C, no
 * repository asked. Every local change since the last sync then classifies
 * as an upload (changed or added here) or a remote deletion (deleted here);
 * nothing can be a download or a conflict. The project config is compared
 * with the copy last synced (`.dsg/last-sync.dsgconfig.yml`). A working copy
 * that never synced has nothing to compare with: NotFoundError.
 */
export async function planOffline(options: Omit<PlanOptions, 'remote' | 'sameConfig'>): Promise<SyncPlan> {
  const { root } = options.project;
  const last = await readLastSync(root);
  if (!last?.manifest.metadata) {
    throw new NotFoundError(`${root} has never synced: there is no last sync to compare with (${LAST_SYNC})`, {
      recoveryHint:
        'Run `dsg status` without --offline to compare with the repository, or `dsg sync` (or `dsg clone`) first.',
    });
  }
  const local = await readOrNull(path.join(root, CONFIG_FILE));
  const saved = await readOrNull(path.join(root, CONFIG_BASE));
  // the repository's config as of the last sync: what was synced (absent for an older dsg's copy: not compared)
  const config: SharedConfig = { local, remote: saved, base: saved ? hashBytes(saved) : null };
  const bytes = lastSyncBytes(root, last.size, last.sha256);
  return planAgainst(options, { exists: true, manifest: last.manifest, bytes }, last.manifest, config);
}

/**
 * The config paths' plans (`.dsgconfig.yml`, compared like a file) when the
 * working tree is its last sync entry for entry: every other path is
 * `none`, so the status shows only these (those of them that are not none).
 */
function fastStatus(last: LastSyncFacts, config: SharedConfig, user: string, outside: OutsideData): StatusPlan {
  const empty = Manifest.empty();
  const paths = classify(empty, empty, empty, configSides(config, user));
  return {
    paths,
    invalid: [],
    heldBack: [],
    remoteSnapshotId: last.snapshotId,
    config,
    outside,
    lastSyncAt: last.createdAt,
    fast: true,
  };
}

/** treeIsLastSync for a project (its listings into `listed`, for the walk record). */
const unchanged = (
  o: Omit<PlanOptions, 'remote' | 'sameConfig'>,
  last: MirrorColumns,
  outside: OutsideDataCounter,
  listed: NonNullable<FastStatusOptions['listed']>,
): Promise<boolean> =>
  treeIsLastSync({
    outside,
    root: o.project.root,
    dataDirs: o.project.dataDirs,
    ...(o.project.ignore ? { ignore: o.project.ignore } : {}),
    statCacheFile: path.join(o.project.root, STAT_CACHE),
    last,
    listed,
    ...(o.onProgress ? { onProgress: o.onProgress } : {}),
  });

/**
 * planOffline for `dsg status --offline`, through the fast path first: when
 * the tree is proved its last sync (compareWithLastSync), no entry object is
 * built; otherwise planOffline.
 */
export async function planOfflineStatus(options: Omit<PlanOptions, 'remote' | 'sameConfig'>): Promise<StatusPlan> {
  const { root } = options.project;
  const { last, unchanged: same, outside: outsideData } = await compareWithLastSync(options);
  if (last && same) {
    const local = await readOrNull(path.join(root, CONFIG_FILE));
    const saved = await readOrNull(path.join(root, CONFIG_BASE));
    const config: SharedConfig = { local, remote: saved, base: saved ? hashBytes(saved) : null };
    return fastStatus(last, config, options.project.user, outsideData);
  }
  return statusOf(await planOffline(options));
}

/** What a status needs of this copy's last sync: its bytes' size and SHA-256 (to compare with the head), snapshot and time. */
export type LastSyncFacts = Omit<UnchangedTree, 'outside'>;

/** This copy's side of the status fast path: its last sync and whether the tree is that last sync. */
export interface LocalComparison {
  /** null: no last sync, or one without a mirror (the full path reads it) */
  last: LastSyncFacts | null;
  unchanged: boolean;
  /** the files outside the data dirs the walk passed (complete when unchanged) */
  outside: OutsideData;
}

const walkSource = (o: Omit<PlanOptions, 'remote' | 'sameConfig'>): WalkRecordSource => ({
  root: o.project.root,
  record: path.join(o.project.root, LAST_SYNC_WALK),
  lastSync: path.join(o.project.root, LAST_SYNC),
  statCache: path.join(o.project.root, STAT_CACHE),
  dataDirs: o.project.dataDirs,
  ignore: o.project.ignore,
});

/**
 * Compare the working tree with its last sync, needing no repository:
 * `dsg status` starts it while the connection opens. First by the walk
 * record (the last walk that proved it, checked natively: no manifest, stat
 * cache or string per file read); otherwise by treeIsLastSync over the last
 * sync's mirror and the stat cache, and a walk that proves it is recorded
 * for the next time. Writes nothing else.
 */
export async function compareWithLastSync(
  options: Omit<PlanOptions, 'remote' | 'sameConfig'>,
): Promise<LocalComparison> {
  const { root } = options.project;
  const src = walkSource(options);
  const recorded = await unchangedByRecord(src);
  if (recorded) {
    const { outside, ...last } = recorded;
    return { last, unchanged: true, outside };
  }
  const before = walkInputs(src); // the identities the record will be bound to, taken before anything is read
  const read = await readMirrorColumns(path.join(root, LAST_SYNC), path.join(root, LAST_SYNC_MIRROR));
  const outside = new OutsideDataCounter();
  const listed = { dirs: [], complete: true };
  const same = read?.columns ? await unchanged(options, read.columns, outside, listed) : false;
  const last: LastSyncFacts | null = read?.columns
    ? {
        size: read.size,
        sha256: read.sha256,
        snapshotId: read.columns.metadata.snapshot_id,
        createdAt: read.columns.metadata.created_at,
      }
    : null;
  const out = outside.result();
  if (same && last && listed.complete) await writeWalkRecord(src, before, { ...last, outside: out }, listed.dirs);
  return { last, unchanged: same, outside: out };
}

/**
 * planSync for `dsg status`, through the fast path first: while the
 * repository hashes its head manifest (`fileDigest`), this copy's tree is
 * compared with its last sync (compareWithLastSync; `local` when the caller
 * started it already, before the connection was open). When the head is the
 * last sync byte for byte and the tree is unchanged, that is the whole
 * answer (R = C = L); otherwise planSync, as always.
 */
export async function planStatus(options: PlanOptions & { local?: Promise<LocalComparison> }): Promise<StatusPlan> {
  const { root } = options.project;
  const { remote } = options;
  if (!remote.fileDigest) {
    await options.local?.catch(() => undefined); // nothing left running behind the full path
    return statusOf(await planSync(options));
  }
  // the request first: the agent hashes its manifest while this copy reads its own and walks the tree
  const theirs = remote.fileDigest(LAST_SYNC);
  const local = options.local ?? compareWithLastSync(options);
  const same = Promise.all([theirs, local]).then(
    ([t, l]) => !!(t && l.last && t.size === l.last.size && t.sha256 === l.last.sha256),
  );
  // the repository's config is asked for beside the digest, not after it (one round trip less: over
  // ssh to ZFS ~65 ms of a 0.85 s status); it is used only when the head is the last sync
  const config = readSharedConfig(root, remote, true, Manifest.empty(), options.sameConfig);
  // every part settles before anything is decided (nothing left running behind the full path)
  const [s, c, l] = await Promise.allSettled([same, config, local]);
  if (s.status === 'fulfilled' && s.value && c.status === 'fulfilled' && c.value && l.status === 'fulfilled') {
    if (l.value.unchanged && l.value.last)
      return fastStatus(l.value.last, c.value, options.project.user, l.value.outside);
  }
  return statusOf(await planSync(options));
}

/**
 * The plan a clone starts from: planSync with C empty. The repository must
 * exist and this directory must never have synced with one (its own
 * last-sync.json refuses the clone before anything is scanned).
 */
export async function planClone(options: Omit<PlanOptions, 'onProgress' | 'sameConfig'>): Promise<SyncPlan> {
  const { project } = options;
  const r = await readRemoteManifest(options.remote);
  if (!r.exists) throw new NotFoundError(`repository ${project.name} does not exist`);
  assertRemoteIntegrity(r.manifest);
  const cache = await readCacheManifest(project.root);
  if (cache.entries.size > 0 || cache.metadata) {
    throw new ValidationError(
      `${project.root} already has ${LAST_SYNC}`,
      { file: LAST_SYNC },
      {
        code: 'ALREADY_CLONED',
        recoveryHint: 'This directory is already a working copy: use `dsg sync`.',
      },
    );
  }
  return planAgainst(options, r, cache, await remoteConfig(options, r, cache));
}

/** R: the repository's current manifest. Missing or invalid while the repository exists is an ERROR, never "empty". */
async function readRemoteManifest(remote: RemoteRepository): Promise<RemoteSide> {
  if (!(await remote.exists())) return { exists: false, manifest: Manifest.empty(), bytes: null };
  const s = await remote.readFile(LAST_SYNC);
  if (!s) {
    throw new ValidationError(
      `the repository has no ${LAST_SYNC}`,
      { file: `repository:${LAST_SYNC}` },
      {
        code: 'REMOTE_MANIFEST',
        recoveryHint: 'The repository is damaged; check it with `dsg validate-snapshot` before syncing.',
      },
    );
  }
  const bytes = await readAll(s);
  const manifest = parseManifest(bytes, `repository:${LAST_SYNC}`);
  if (!manifest.metadata) {
    throw new ValidationError(
      `the repository's ${LAST_SYNC} has no metadata`,
      { file: `repository:${LAST_SYNC}`, field: 'metadata' },
      {
        code: 'REMOTE_MANIFEST',
        recoveryHint: 'The repository is damaged; check it with `dsg validate-snapshot` before syncing.',
      },
    );
  }
  return { exists: true, manifest, bytes: heldBytes(bytes) };
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
        recoveryHint:
          'Nothing was changed. Run `dsg validate-chain`, and restore the repository from its last good snapshot before syncing.',
      },
    );
  }
}

/** C: this client's last-sync.json; absent → empty (never synced); invalid → error. */
async function readCacheManifest(root: string, remote?: RemoteSide): Promise<Manifest> {
  const last = await readLastSync(root);
  if (!last) return Manifest.empty();
  // After a sync C and R are the same bytes: one manifest for both (never
  // mutated after parsing, so sharing is safe).
  const same = remote?.bytes && last.size === remote.bytes.size && last.sha256 === remote.bytes.sha256;
  return same ? remote.manifest : last.manifest;
}

/** The shared config and the scan of L, then the three-way classification after holding back what this client must never write. */
async function planAgainst(
  o: Omit<PlanOptions, 'remote'>,
  r: RemoteSide,
  cache: Manifest,
  config: SharedConfig,
): Promise<SyncPlan> {
  const { project } = o;
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
  const part = partitionByScope(
    scan.manifest,
    withoutConfigEntry(cache),
    withoutConfigEntry(r.manifest),
    projectScope(project.dataDirs),
  );
  // the project config is compared like a file, beside the manifest entries
  const sides = configSides(config, project.user);
  const paths = classify(part.local, part.cache, part.remote, sides); // no copy of a manifest for one extra entry
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
    outside: scan.outside,
  };
}
