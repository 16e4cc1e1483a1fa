import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { CONFIG_BASE, ValidationError, type RemoteRepository } from '@dsg/contracts';
import { CONFIG_FILE, hashBytes, Manifest, type ManifestEntry } from '@dsg/manifest';
import type { SyncPlan } from './plan.js';
import type { Ops, Resolution, Transfer } from './resolve.js';
import type { SyncResult } from './result.js';
import { once, readAll } from './streams.js';
import { metaRel, type SyncRun } from './sync-run.js';
import { openSource } from './transfers.js';

/**
 * `.dsgconfig.yml` travels beside the manifest, never in it: the original
 * (HRDAG/dsg) never scans it, so a manifest entry for it would be deleted by
 * its next sync, and its clone would write our copy over the user's. The
 * repository keeps a root copy (written inside the sync's transaction), and
 * each working copy remembers the bytes it last synced in
 * `.dsg/last-sync.dsgconfig.yml`: the base of the same three-way comparison
 * files get, so a teammate's edit is downloaded (behind the CLI's
 * --accept-config check), a local edit is uploaded, and two edits are a
 * conflict settled like a file's (resolution L or R in conflicts.txt).
 */
export { CONFIG_BASE } from '@dsg/contracts';

export interface SharedConfig {
  local: Buffer | null;
  remote: Buffer | null;
  base: string | null;
  /** no base, and the caller says the two differ only in form: not compared */
  sameMeaning?: true;
}

const readOrNull = (file: string): Promise<Buffer | null> =>
  readFile(file).catch((e: unknown) => {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  });

/**
 * The three copies of the project config. The base is the saved copy, or,
 * for a working copy last synced by an older dsg that kept the config as a
 * manifest entry, that entry's hash.
 */
export async function readSharedConfig(
  root: string,
  remote: RemoteRepository,
  remoteExists: boolean,
  cache: Manifest,
  sameConfig?: (local: Buffer, remote: Buffer) => boolean,
): Promise<SharedConfig> {
  const local = await readOrNull(path.join(root, CONFIG_FILE));
  const s = remoteExists ? await remote.readFile(CONFIG_FILE) : null;
  const remoteBytes = s ? await readAll(s) : null;
  const saved = await readOrNull(path.join(root, CONFIG_BASE));
  const legacy = cache.entries.get(CONFIG_FILE);
  const base = saved ? hashBytes(saved) : legacy?.type === 'file' ? legacy.hash : null;
  // Never synced a config (a working copy of the original's) and the two differ only in form
  // (the original's legacy keys vs the current ones): nothing to share, and no conflict to ask about.
  const sameMeaning =
    base === null &&
    local !== null &&
    remoteBytes !== null &&
    !local.equals(remoteBytes) &&
    (sameConfig?.(local, remoteBytes) ?? false);
  return { local, remote: remoteBytes, base, ...(sameMeaning ? { sameMeaning } : {}) };
}

/** A manifest without an entry for the project config (older dsg versions kept one). */
export function withoutConfigEntry(manifest: Manifest): Manifest {
  if (!manifest.entries.has(CONFIG_FILE)) return manifest;
  return new Manifest(
    [...manifest.entries.values()].filter((e) => e.path !== CONFIG_FILE),
    manifest.metadata,
  );
}

const entry = (bytes: Buffer, user: string): ManifestEntry => ({
  type: 'file',
  path: CONFIG_FILE,
  user,
  filesize: bytes.byteLength,
  // equality is by hash; no mtime is applied to the config on either side
  mtime: '',
  hash: hashBytes(bytes),
});

/**
 * The config as one more path of the three-way comparison: manifests
 * holding only `.dsgconfig.yml`, to be classified with the others. A
 * repository without a root copy (the original's, or one made before this
 * rule) is not compared: it gets this copy with its next snapshot, and is
 * never a reason for one. The base takes part only when both sides have the
 * file: a working copy without one gets the repository's — never "deleted
 * on one side".
 */
export function configSides(
  c: SharedConfig,
  user: string,
): { local: ManifestEntry[]; cache: ManifestEntry[]; remote: ManifestEntry[] } {
  if (!c.remote || c.sameMeaning) return { local: [], cache: [], remote: [] };
  const local = c.local ? [entry(c.local, user)] : [];
  const remote = [entry(c.remote, user)];
  const cache = c.local && c.remote && c.base ? [{ ...entry(c.local, user), filesize: 0, hash: c.base }] : [];
  return { local, cache, remote };
}

/** A config conflict settles with L (keep yours) or R (take the repository's): there is no last-synced config to restore. */
export function assertConfigResolution(
  plan: Pick<SyncPlan, 'paths'>,
  resolutions?: ReadonlyMap<string, Resolution>,
): void {
  if (resolutions?.get(CONFIG_FILE) !== 'C') return;
  if (!plan.paths.some((p) => p.path === CONFIG_FILE && p.action === 'conflict')) return;
  throw new ValidationError(`${CONFIG_FILE} can be resolved only with L (keep yours) or R (take the repository's)`, {
    path: CONFIG_FILE,
  });
}

/**
 * The config travels beside the manifest: transferred, never an entry, never
 * backed up (a losing local config is shown as a diff by the CLI before it
 * is replaced).
 */
export function keepConfigOutOfManifest(ops: Pick<Ops, 'merged' | 'backups'>): void {
  ops.merged.delete(CONFIG_FILE);
  ops.backups = ops.backups.filter((b) => b.path !== CONFIG_FILE);
}

/** Whether the config is among the transfers, each way. */
export function configMoves(ops: Pick<Ops, 'uploads' | 'downloads'>): { uploaded: boolean; downloaded: boolean } {
  const moved = (list: Transfer[]): boolean => list.some((t) => t.path === CONFIG_FILE);
  return { uploaded: moved(ops.uploads), downloaded: moved(ops.downloads) };
}

/** The incoming project config, given to the caller's check before anything is staged. */
export async function checkIncomingConfig(
  run: SyncRun,
  ops: Pick<Ops, 'downloads'>,
  validate?: (content: Buffer) => void | Promise<void>,
): Promise<void> {
  const d = ops.downloads.find((t) => t.path === CONFIG_FILE);
  if (!d || d.entry.type !== 'file' || !validate) return;
  const bytes = await readAll(await openSource(run, d));
  // bytes that do not match the manifest are refused by the download's own hash check
  if (hashBytes(bytes) === d.entry.hash) await validate(bytes);
}

/** A repository without a root copy (new, or made by the original) gets this working copy's with the snapshot. */
export async function writeRootCopy(run: SyncRun, plan: Pick<SyncPlan, 'config'>, result: SyncResult): Promise<void> {
  const c = plan.config;
  if (c.remote || !c.local) return;
  await run.remote.writeFile(run.tx, CONFIG_FILE, once(c.local), {
    hash: hashBytes(c.local),
    size: c.local.byteLength,
  });
  result.uploaded.push(CONFIG_FILE);
}

/**
 * The project config both sides hold once this apply commits: the base of
 * the next comparison. `snapshot`: this apply is a repository transaction,
 * which also writes the root copy a repository lacks. `clone`: a repository
 * without a root copy gave the clone the config the caller wrote for it;
 * that is its base, so a root copy that appears later is downloaded, not a
 * conflict.
 */
export async function stageConfigBase(
  run: SyncRun,
  plan: Pick<SyncPlan, 'config'>,
  moved: { uploaded: boolean; downloaded: boolean },
  mode: 'client' | 'snapshot' | 'clone',
): Promise<void> {
  const c = plan.config;
  let after: Buffer | null;
  if (moved.downloaded) after = c.remote;
  else if (moved.uploaded || (!c.remote && mode !== 'client')) after = c.local;
  else after = c.local && c.remote?.equals(c.local) ? c.local : null;
  if (after) await run.clientFs.stageMeta(run.tx, metaRel(CONFIG_BASE), after);
}
