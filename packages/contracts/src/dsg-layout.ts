/**
 * Where dsg keeps its metadata, relative to a working copy's root and to a
 * repository's tree alike: the one spelling every layer uses (the original
 * HRDAG/dsg reads the same names).
 */
import { parseSnapshotId } from './snapshot-id.js';

export const DSG_DIR = '.dsg';
/** the manifest of the last sync (working copy) / of the head (repository) */
export const LAST_SYNC = '.dsg/last-sync.json';
/** every snapshot's metadata block, by id */
export const SYNC_MESSAGES = '.dsg/sync-messages.json';
/**
 * the manifest of an earlier snapshot, LZ4-compressed. The id is checked:
 * ids come from repository content (sync-messages.json keys), and a path
 * must never be built from one that is not `sN` (`../x` would leave the archive).
 */
export const archivePath = (snapshotId: string): string => `.dsg/archive/${parseSnapshotId(snapshotId)}-sync.json.lz4`;
/** a working copy's last sync as a binary mirror of its parse, bound to last-sync.json's bytes (local, derived: never synced) */
export const LAST_SYNC_MIRROR = '.dsg/last-sync.bin';
/** a working copy's proof that its tree was its last sync: the walk that proved it (local, derived: never synced) */
export const LAST_SYNC_WALK = '.dsg/last-sync.walk';
/** a working copy's stat cache (size, mtime, inode → hash) */
export const STAT_CACHE = '.dsg/stat-cache.json';
/** the project config as this working copy last synced it: the base of its three-way comparison */
export const CONFIG_BASE = '.dsg/last-sync.dsgconfig.yml';
/** how this working copy reaches its repository (never shared) */
export const LOCAL_CONFIG_FILE = '.dsg/config.local.yml';
/** the project config a team shares: never a manifest entry, a root copy in the repository */
export const PROJECT_CONFIG_FILE = '.dsgconfig.yml';
