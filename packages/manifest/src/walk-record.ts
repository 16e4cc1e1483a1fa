/**
 * The walk record (`.dsg/last-sync.walk`): a working copy's proof that its
 * tree was its last sync, kept so the next status can check it instead of
 * proving it again. treeIsLastSync proves "unchanged" from the walk's
 * listings, the last sync (`last-sync.json`), the stat cache and the scope
 * (data dirs, ignore rules). The record keeps those listings (the data files
 * with their stats), and the identity of the two files. While both files are
 * the very ones it was made from (file-identity.ts: inode and times, settled)
 * and every recorded directory still lists the same (`sameWalk`, natively:
 * names, kinds, and the data files' size, mtime, inode and ctime), the same
 * walk would prove the same again — so the record answers, with the facts a
 * status needs (the last sync's digest, snapshot, time, the files outside
 * the data dirs), without reading the last sync, the stat cache or a string
 * per file. Like git's index refreshed by `git status`: derived, local data,
 * rewritten when a walk proves the tree again; a missing, stale or damaged
 * record is ignored, never trusted in part (an xxh3 over all of it: a flipped
 * `checked` byte would let a changed file through).
 */
import { readFileSync } from 'node:fs';
import { xxh3 } from '@node-rs/xxhash';
import { encodeWalk, sameWalk, type ListedDir } from '@dsg/dirstat';
import { writeFileAtomic } from '@dsg/contracts';
import { identityOf, nowNs, sameIdentity, settled, type SourceIdentity } from './file-identity.js';
import type { OutsideData } from './outside-data.js';
import { ENTRY_RULES_VERSION } from './unusable.js';

const MAGIC = Buffer.from('dsgwalk\n', 'latin1');
/**
 * The format's version × 2^16 + ENTRY_RULES_VERSION. Bump the first with
 * any change to what treeIsLastSync accepts (names, scope, outside-data
 * rules): a record made under other rules must not answer for these.
 */
const VERSION = 1 * 0x10000 + ENTRY_RULES_VERSION;
/** magic, u32 version, u32 JSON length, u64 xxh3 of the rest; then the JSON, then the walk (encodeWalk) */
const HEADER = MAGIC.length + 4 + 4 + 8;
/** How long before the record is made its two files must have last changed (git's racy-clean rule). */
export const WALK_RECORD_RACY_MS = 2000;

/** What a status takes from an unchanged tree's last sync. */
export interface UnchangedTree {
  /** last-sync.json's size and SHA-256 (compared with the repository's head) */
  size: number;
  sha256: string;
  snapshotId: string;
  createdAt: string;
  outside: OutsideData;
}

/** The files a record stands for, and the walk's scope. */
export interface WalkRecordSource {
  /** the working copy's root (the walk's paths are relative to it) */
  root: string;
  /** where the record is kept */
  record: string;
  lastSync: string;
  statCache: string;
  dataDirs: readonly string[];
  ignore?: { names?: string[]; suffixes?: string[]; paths?: string[] } | undefined;
}

/** The identities of the two files, taken before they are read for a walk (writeWalkRecord compares them after). */
export interface WalkInputs {
  lastSync: SourceIdentity | null;
  statCache: SourceIdentity | null;
}

const scopeOf = (s: WalkRecordSource): string => JSON.stringify({ dataDirs: s.dataDirs, ignore: s.ignore ?? null });

const idText = (id: SourceIdentity): string[] => [id.dev, id.ino, id.size, id.mtimeNs, id.ctimeNs].map(String);

function idFrom(v: unknown): SourceIdentity | null {
  if (!Array.isArray(v) || v.length !== 5 || !v.every((x) => typeof x === 'string' && /^\d+$/.test(x))) return null;
  const [dev, ino, size, mtimeNs, ctimeNs] = (v as string[]).map((x) => BigInt(x)) as [
    bigint,
    bigint,
    bigint,
    bigint,
    bigint,
  ];
  return { dev, ino, size, mtimeNs, ctimeNs };
}

/** Take the identities a record will be bound to: before the last sync and the stat cache are read. */
export function walkInputs(s: WalkRecordSource): WalkInputs {
  return { lastSync: identityOf(s.lastSync), statCache: identityOf(s.statCache) };
}

/**
 * The facts of the tree when its record still holds (see the module
 * comment); null when there is none, it is stale or damaged, or the tree
 * differs from it anywhere. Reads only. `racyMs` is for tests (see writeWalkRecord).
 */
export async function unchangedByRecord(
  s: WalkRecordSource,
  o: { racyMs?: number } = {},
): Promise<UnchangedTree | null> {
  let buf: Buffer;
  try {
    buf = readFileSync(s.record);
  } catch {
    return null;
  }
  if (buf.length < HEADER || !buf.subarray(0, MAGIC.length).equals(MAGIC)) return null;
  if (buf.readUInt32LE(MAGIC.length) !== VERSION) return null;
  const jsonLen = buf.readUInt32LE(MAGIC.length + 4);
  if (HEADER + jsonLen > buf.length || buf.readBigUInt64LE(MAGIC.length + 8) !== xxh3.xxh64(buf.subarray(HEADER)))
    return null;
  let head: { scope?: unknown; at?: unknown; lastSync?: unknown; statCache?: unknown; facts?: UnchangedTree };
  try {
    head = JSON.parse(buf.toString('utf8', HEADER, HEADER + jsonLen)) as typeof head;
  } catch {
    return null;
  }
  if (head.scope !== scopeOf(s) || typeof head.at !== 'string' || !/^\d+$/.test(head.at) || !head.facts) return null;
  const at = BigInt(head.at);
  for (const [file, recorded] of [
    [s.lastSync, idFrom(head.lastSync)],
    [s.statCache, idFrom(head.statCache)],
  ] as const) {
    const now = identityOf(file);
    if (!recorded || !now || !sameIdentity(recorded, now)) return null;
    if (!settled(recorded, at, o.racyMs ?? WALK_RECORD_RACY_MS)) return null; // never written so: a damaged writer
  }
  return (await sameWalk(s.root, buf.subarray(HEADER + jsonLen))) ? head.facts : null;
}

/**
 * Record a walk that proved the tree is its last sync (treeIsLastSync with
 * `listed`). Only when both files are still what they were before the walk
 * read them (`before`), and settled: otherwise a later change could keep
 * their identity. Best effort (a record that cannot be written only costs the
 * next status its speed); false when nothing was written. `racyMs` is for
 * tests, whose files are always new.
 */
export async function writeWalkRecord(
  s: WalkRecordSource,
  before: WalkInputs,
  facts: UnchangedTree,
  dirs: readonly ListedDir[],
  o: { racyMs?: number } = {},
): Promise<boolean> {
  const at = nowNs();
  const racy = o.racyMs ?? WALK_RECORD_RACY_MS;
  const ids: SourceIdentity[] = [];
  for (const [file, was] of [
    [s.lastSync, before.lastSync],
    [s.statCache, before.statCache],
  ] as const) {
    const now = identityOf(file);
    if (!was || !now || !sameIdentity(was, now) || !settled(now, at, racy)) return false;
    ids.push(now);
  }
  const json = Buffer.from(
    JSON.stringify({ scope: scopeOf(s), at: String(at), lastSync: idText(ids[0]!), statCache: idText(ids[1]!), facts }),
    'utf8',
  );
  const walk = encodeWalk(dirs);
  const out = Buffer.allocUnsafe(HEADER + json.length + walk.length);
  MAGIC.copy(out, 0);
  out.writeUInt32LE(VERSION, MAGIC.length);
  out.writeUInt32LE(json.length, MAGIC.length + 4);
  json.copy(out, HEADER);
  walk.copy(out, HEADER + json.length);
  out.writeBigUInt64LE(xxh3.xxh64(out.subarray(HEADER)), MAGIC.length + 8);
  try {
    await writeFileAtomic(s.record, out);
    return true;
  } catch {
    return false;
  }
}
