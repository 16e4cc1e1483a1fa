/**
 * Helpers of the hostile-input tests (issue 10 item 5): a repository one
 * snapshot ahead of a working copy, edits of the repository's live manifest
 * (as root, as an attacker on the server would), and "nothing changed
 * anywhere" snapshots of the client and the repository.
 */
import { chmodSync, existsSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { entriesHash, hashBytes, type ManifestEntry } from '@dsg/manifest';
import { listAll } from '@dsg/testenv';
import {
  dsgAsync,
  isParkedPath,
  listing as harnessListing,
  ok,
  sandbox,
  write,
  type Backend,
  type RunResult,
  type Sandbox,
} from './harness.js';

export const LAST_SYNC = '.dsg/last-sync.json';

/** The JSON shape of a manifest, loosely: tests edit it freely. */
export interface ManifestJson {
  entries: Record<string, Record<string, unknown>>;
  metadata: Record<string, unknown> & { entry_count: number; entries_hash: string };
}

/** The `--json` error document. */
export interface ErrorDoc {
  exitCode: number;
  error: { code: string; message: string; recoveryHint: string };
}

export function errorDoc(r: RunResult): ErrorDoc {
  try {
    return JSON.parse(r.stdout) as ErrorDoc;
  } catch {
    throw new Error(
      `no JSON error document (exit ${r.code})\nstdout: ${r.stdout.slice(0, 2000)}\nstderr: ${r.stderr.slice(0, 2000)}`,
    );
  }
}

/**
 * A repository at s2 and a working copy A still at s1 with one local change:
 * A's sync would download `input/from-b.csv` AND upload `input/new-in-a.csv`,
 * so a refusal has both directions to get wrong.
 */
export interface Scene {
  sb: Sandbox;
  b: Backend;
  name: string;
  /** the working copy one snapshot behind */
  A: string;
  /** the repository's live tree (where its current manifest is) */
  live: string;
}

export async function makeScene(b: Backend, name: string): Promise<Scene> {
  const sb = sandbox(b.userYaml);
  const run = async (what: string, cwd: string, ...args: string[]): Promise<void> =>
    void ok(await dsgAsync(cwd, sb.env, args), what);
  const A = path.join(sb.dir, 'a');
  write(path.join(A, 'input', 'x.csv'), 'id,name\n1,Ana\n');
  write(path.join(A, 'output', 'y.txt'), 'result\n');
  await run('init', A, 'init', ...b.initArgs(name), '--repo-name', name, '-q');
  const B = path.join(sb.dir, 'b');
  await run('clone b', sb.dir, 'clone', ...b.cloneArgs(name), B, '-q');
  write(path.join(B, 'input', 'from-b.csv'), 'id\n42\n');
  await run('sync b', B, 'sync', '-m', 'from b', '-q');
  write(path.join(A, 'input', 'new-in-a.csv'), 'local only\n');
  const past = new Date(Date.now() - 3600_000); // old enough for the stat cache to keep it
  utimesSync(path.join(A, 'input', 'new-in-a.csv'), past, past);
  // fill the stat cache (every scan may refresh it), so a refused command that rewrites it shows as a change
  await run('status a', A, 'status', '-q');
  const live = b.liveTree(name);
  if (!live) throw new Error(`${b.label}: no live tree for ${name}`);
  return { sb, b, name, A, live };
}

/** Run `fn` after every earlier call with the same key has settled: the steps of one backend stay in order while backends run side by side. */
const queues = new Map<string, Promise<unknown>>();
export function serial<T>(key: string, fn: () => T | Promise<T>): Promise<T> {
  const next = (queues.get(key) ?? Promise.resolve()).catch(() => undefined).then(fn);
  queues.set(key, next);
  return next;
}

/**
 * path → content (base64) of every file under dir; symlinks as `-> target`
 * (never followed: hostile trees link out of themselves), FIFOs and other
 * special files by kind (never opened: a FIFO would block), directories as
 * `dir` (an empty one left behind is a change too).
 */
/** Every entry under dir, directories included (an empty directory created by a refused command counts). */
export function listing(dir: string): Record<string, string> {
  return harnessListing(dir, undefined, { dirs: true });
}

/** Everything on the repository side: files of the live tree (and all snapshots on posix), datasets on ZFS, leftovers, lock. */
export function repoState(s: Scene): Record<string, unknown> {
  const posixRoot = path.dirname(s.live); // <root>/<name> holds current, snapshots/, tx/, lock
  return {
    files:
      s.b.type === 'posix'
        ? Object.fromEntries(Object.entries(listing(posixRoot)).filter(([p]) => !isParkedPath(p)))
        : listing(s.live),
    snapshots: s.b.snapshots(s.name),
    leftovers: s.b.leftovers(s.name),
    datasets: s.b.type === 'zfs' ? listAll(parentDataset(s)).filter((n) => n.includes(`/${s.name}`)) : [],
    locked: existsSync(s.b.lockFile(s.name)),
  };
}

function parentDataset(s: Scene): string {
  const parent = (s.b as Backend & { parent?: { dataset: string } }).parent;
  if (!parent) throw new Error('not a zfs backend');
  return parent.dataset;
}

/**
 * Files of the working copy INCLUDING .dsg/ (byte for byte), except its
 * caches: any scan may refresh the stat cache (a file younger than the
 * racy-clean window at one scan is cached by the next), and the first read
 * of a last sync writes its mirror (a status that proves the tree unchanged,
 * its walk record) — whether they changed depends on the
 * clock and on which command read first.
 */
export const clientState = (dir: string): Record<string, string> => {
  const all = listing(dir);
  delete all['.dsg/stat-cache.json'];
  delete all['.dsg/last-sync.bin'];
  delete all['.dsg/last-sync.walk'];
  return all;
};

export function readManifest(s: Scene): ManifestJson {
  return JSON.parse(readFileSync(path.join(s.live, LAST_SYNC), 'utf8')) as ManifestJson;
}

export function writeManifestText(s: Scene, text: string): void {
  writeFileSync(path.join(s.live, LAST_SYNC), text);
}

export function writeManifest(s: Scene, m: ManifestJson): void {
  writeManifestText(s, JSON.stringify(m, null, 2));
}

/** Recompute entry_count and entries_hash: a forgery that is consistent in itself. */
export function reseal(m: ManifestJson): ManifestJson {
  const entries = Object.values(m.entries) as unknown as ManifestEntry[];
  m.metadata.entry_count = entries.length;
  m.metadata.entries_hash = entriesHash(entries);
  return m;
}

/** Add an entry like `input/x.csv` under another path (keeps entry_count right, entries_hash not). */
export function addEntry(m: ManifestJson, p: string, e: Record<string, unknown> = {}): ManifestJson {
  m.entries[p] = { ...m.entries['input/x.csv'], path: p, ...e };
  m.metadata.entry_count = Object.keys(m.entries).length;
  return m;
}

export const fileHash = (content: string | Buffer): string => hashBytes(content);

/**
 * Save the named files of the live tree (content and mode) and give a
 * function that puts them back; a symlink or FIFO put in place of a file is
 * removed first, never written through.
 */
export function saveLive(s: Scene, rels: string[]): () => void {
  const saved = rels.map((r) => {
    const full = path.join(s.live, r);
    return { full, bytes: readFileSync(full), mode: statSync(full).mode & 0o7777 };
  });
  return () => {
    for (const f of saved) {
      rmSync(f.full, { force: true });
      writeFileSync(f.full, f.bytes);
      chmodSync(f.full, f.mode);
    }
  };
}
