/**
 * Many clients, one repository: the bookkeeping shared by the concurrency
 * test and the soak script. Clients make random edits, deletes and renames
 * between sync waves; every content a client ever offered to `dsg sync` is
 * remembered by hash so that, at the end, each must be found in the
 * repository's history or still in that client's directory (tree, conflict
 * backup `name~STAMP~`, or `.dsg/backup/`). The test only destroys a content
 * itself (overwrite, delete) once it is already safe in one of those places,
 * so anything missing at the end was lost by dsg.
 */
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { compareSnapshotIds, parseSnapshotId, snapshotIdOf, snapshotNumber } from '@dsg/contracts';
import { decompressArchive, hashBytes, isConflictBackup } from '@dsg/manifest';
import { dsgAsync, json, noMeta, type Backend, type RunResult } from './harness.js';

/** path → content hash */
export type Tree = Map<string, string>;

export type Outcome = 'committed' | 'nothing' | 'conflict' | 'locked' | 'error';

export interface SyncRecord {
  client: string;
  round: number;
  args: string[];
  outcome: Outcome;
  snapshotId: string | null;
  /** the client's data tree right after the command */
  treeAfter: Tree;
  code: number;
  stderr: string;
  ms: number;
}

/** A seeded PRNG (mulberry32): a failing soak can be replayed with --seed. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Every regular file under dir (relative path → hash), optionally skipping some. */
export function hashTree(dir: string, skip: (rel: string) => boolean = () => false): Tree {
  const out: Tree = new Map();
  if (!existsSync(dir)) return out;
  const walk = (d: string): void => {
    for (const n of readdirSync(d)) {
      const full = path.join(d, n);
      const rel = path.relative(dir, full);
      if (skip(rel)) continue;
      const st = lstatSync(full);
      if (st.isDirectory()) walk(full);
      else if (st.isFile()) out.set(rel, hashBytes(readFileSync(full)));
    }
  };
  walk(dir);
  return out;
}

/** The data a working tree holds as dsg sees it: no `.dsg/`, no conflicts.txt, no conflict backups. */
/** The files a snapshot lists: not .dsg/, not conflict backups, not .dsgconfig.yml (it travels beside the manifest). */
export function dataTree(dir: string): Tree {
  return hashTree(dir, (rel) => noMeta(rel) || rel === '.dsgconfig.yml' || isConflictBackup(rel));
}

function entriesOf(text: string): Tree {
  const doc = JSON.parse(text) as {
    entries: Record<string, { type: string; hash?: string }>;
    metadata?: { snapshot_id?: string };
  };
  const t: Tree = new Map();
  for (const [p, e] of Object.entries(doc.entries)) if (e.type === 'file' && e.hash) t.set(p, e.hash);
  return t;
}

/**
 * The repository's history read on the server side (this machine): the live
 * tree's `.dsg/last-sync.json` is the head, `.dsg/archive/sK-sync.json.lz4`
 * every earlier snapshot. Archives never change, so they are read once.
 */
export class RepoHistory {
  private readonly cache = new Map<string, Tree>();
  constructor(
    private readonly backend: Backend,
    private readonly name: string,
  ) {}

  /** snapshot id → path → hash, for every snapshot s1…head */
  read(): Map<string, Tree> {
    const live = this.backend.liveTree(this.name);
    if (!live) return new Map();
    const head = JSON.parse(readFileSync(path.join(live, '.dsg', 'last-sync.json'), 'utf8')) as {
      metadata: { snapshot_id: string };
    };
    const headId = head.metadata.snapshot_id;
    const out = new Map<string, Tree>();
    const n = snapshotNumber(parseSnapshotId(headId, 'snapshot_id'))!;
    for (let k = 1; k < n; k++) {
      const id = snapshotIdOf(k);
      let t = this.cache.get(id);
      if (!t) {
        const f = path.join(live, '.dsg', 'archive', `${id}-sync.json.lz4`);
        t = entriesOf(decompressArchive(readFileSync(f), f));
        this.cache.set(id, t);
      }
      out.set(id, t);
    }
    out.set(headId, entriesOf(readFileSync(path.join(live, '.dsg', 'last-sync.json'), 'utf8')));
    return out;
  }

  /** every content hash any snapshot holds */
  allHashes(): Set<string> {
    const s = new Set<string>();
    for (const t of this.read().values()) for (const h of t.values()) s.add(h);
    return s;
  }
}

export interface ClientOptions {
  name: string;
  dir: string;
  env: NodeJS.ProcessEnv;
  /** paths every client may write (overlap → conflicts) */
  shared: string[];
}

/** One working directory and what it has offered to dsg. */
export class SimClient {
  readonly name: string;
  readonly dir: string;
  readonly env: NodeJS.ProcessEnv;
  /** content hash → a path it had when it was offered to a sync */
  readonly offered = new Map<string, string>();
  private counter = 0;
  private readonly shared: string[];

  constructor(o: ClientOptions) {
    this.name = o.name;
    this.dir = o.dir;
    this.env = o.env;
    this.shared = o.shared;
  }

  get hasConflicts(): boolean {
    return existsSync(path.join(this.dir, 'conflicts.txt'));
  }

  private content(round: number, rand: () => number): string {
    // unique per client and edit; sizes from a few bytes to ~12 KiB
    const head = `${this.name} r${round} #${++this.counter} ${rand().toString(36).slice(2)}\n`;
    return head + 'x'.repeat(Math.floor(rand() ** 3 * 12_000));
  }

  private write(rel: string, text: string): void {
    const f = path.join(this.dir, rel);
    mkdirSync(path.dirname(f), { recursive: true });
    writeFileSync(f, text);
  }

  /**
   * A few random edits: add (own area), modify own or shared, delete, rename.
   * A file whose content is not yet safe (`isSafe`) is never overwritten or
   * deleted, so the test itself never loses data.
   */
  edit(round: number, rand: () => number, isSafe: (hash: string) => boolean): string[] {
    const done: string[] = [];
    const n = 1 + Math.floor(rand() * 3);
    const data = [...dataTree(this.dir)].filter(([p]) => p !== '.dsgconfig.yml');
    const own = data.filter(([p]) => p.startsWith(`input/${this.name}/`));
    const pick = <T>(a: T[]): T | undefined => (a.length ? a[Math.floor(rand() * a.length)] : undefined);
    for (let i = 0; i < n; i++) {
      const r = rand();
      if (r < 0.3 || own.length === 0) {
        const rel = `input/${this.name}/f${round}-${this.counter + 1}.txt`;
        this.write(rel, this.content(round, rand));
        done.push(`add ${rel}`);
      } else if (r < 0.55) {
        const rel = pick(this.shared)!;
        const cur = data.find(([p]) => p === rel);
        if (cur && !isSafe(cur[1])) continue;
        this.write(rel, this.content(round, rand));
        done.push(`write ${rel}`);
      } else if (r < 0.75) {
        const f = pick(own)!;
        if (!isSafe(f[1])) continue;
        this.write(f[0], this.content(round, rand));
        done.push(`write ${f[0]}`);
      } else if (r < 0.88) {
        const f = pick(own)!;
        if (!isSafe(f[1]) || !existsSync(path.join(this.dir, f[0]))) continue;
        rmSync(path.join(this.dir, f[0]));
        done.push(`delete ${f[0]}`);
      } else {
        const f = pick(own)!;
        if (!existsSync(path.join(this.dir, f[0]))) continue;
        const to = `input/${this.name}/m${round}-${++this.counter}.txt`;
        mkdirSync(path.dirname(path.join(this.dir, to)), { recursive: true });
        renameSync(path.join(this.dir, f[0]), path.join(this.dir, to));
        done.push(`rename ${f[0]} -> ${to}`);
      }
    }
    return done;
  }

  /** Remember what the tree holds right now: it is about to be offered to dsg. */
  noteOffered(): void {
    for (const [p, h] of dataTree(this.dir)) if (!this.offered.has(h)) this.offered.set(h, p);
  }

  /** Fill every open resolution in conflicts.txt (random L/R, or `side`). */
  resolve(rand: () => number, side?: 'L' | 'R'): void {
    const f = path.join(this.dir, 'conflicts.txt');
    const text = readFileSync(f, 'utf8');
    writeFileSync(
      f,
      text.replace(/^resolution: *$/gm, () => `resolution: ${side ?? (rand() < 0.5 ? 'L' : 'R')}`),
    );
  }

  /** Contents kept aside by dsg: conflict backups `name~STAMP~` and `.dsg/backup/`. */
  backups(): Set<string> {
    const skip = (rel: string): boolean => {
      if (lstatSync(path.join(this.dir, rel)).isDirectory())
        return rel.startsWith('.dsg/') && rel !== '.dsg/backup' && !rel.startsWith('.dsg/backup/');
      return !(rel.startsWith('.dsg/backup/') || isConflictBackup(rel));
    };
    return new Set(hashTree(this.dir, skip).values());
  }

  /** Every content hash under the client's directory: tree, conflict backups, .dsg/backup. */
  everything(): Set<string> {
    return new Set(hashTree(this.dir).values());
  }
}

/** exit code + --json output → outcome. */
export function outcomeOf(r: RunResult): { outcome: Outcome; snapshotId: string | null } {
  if (r.code === 3) return { outcome: 'conflict', snapshotId: null };
  if (r.code === 4) return { outcome: 'locked', snapshotId: null };
  if (r.code !== 0) return { outcome: 'error', snapshotId: null };
  const doc = json<{ committed?: boolean; snapshotId?: string | null }>(r);
  return doc.committed && doc.snapshotId
    ? { outcome: 'committed', snapshotId: doc.snapshotId }
    : { outcome: 'nothing', snapshotId: null };
}

/**
 * One sync attempt of a client: `sync --continue` after resolving open
 * conflicts, else a plain sync. A `--continue` whose conflicts.txt no longer
 * matches the repository (it moved on meanwhile) gets a new conflicts.txt
 * (exit 3) and is resolved again next time.
 */
export async function syncOnce(c: SimClient, round: number, rand: () => number, message: string): Promise<SyncRecord> {
  const args = ['--json', 'sync', '-m', message];
  if (c.hasConflicts) {
    c.resolve(rand);
    args.push('--continue');
  }
  c.noteOffered();
  const r = await dsgAsync(c.dir, c.env, args);
  const o = outcomeOf(r);
  return { client: c.name, round, args, ...o, treeAfter: dataTree(c.dir), code: r.code, stderr: r.stderr, ms: r.ms };
}

export interface Tally {
  committed: number;
  nothing: number;
  conflict: number;
  locked: number;
  error: number;
}

export function tally(records: SyncRecord[]): Tally {
  const t: Tally = { committed: 0, nothing: 0, conflict: 0, locked: 0, error: 0 };
  for (const r of records) t[r.outcome]++;
  return t;
}

const show = (t: Tree): string =>
  [...t]
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([p, h]) => `${p}=${h}`)
    .join(' ');

/**
 * Everything the concurrent runs must satisfy afterwards (problems as
 * lines, [] when all holds):
 *  - every attempt committed, did nothing, hit a conflict (3) or the lock (4);
 *  - committed snapshot ids are distinct and, with s1, exactly the
 *    repository's snapshots s1…sN (linear, nothing committed lost);
 *  - right after a commit the client's tree equals that snapshot's manifest;
 *  - every content a client offered is in the history or still with it.
 */
export function checkRun(records: SyncRecord[], history: Map<string, Tree>, clients: SimClient[]): string[] {
  const problems: string[] = [];
  for (const r of records) {
    if (r.outcome === 'error')
      problems.push(
        `${r.client} round ${r.round} ${r.args.join(' ')}: exit ${r.code}: ${r.stderr.trim().split('\n').slice(0, 3).join(' | ')}`,
      );
  }
  const committed = records.filter((r) => r.outcome === 'committed');
  const ids = committed.map((r) => r.snapshotId!);
  const dup = ids.filter((id, i) => ids.indexOf(id) !== i);
  if (dup.length) problems.push(`snapshot ids committed twice: ${dup.join(', ')}`);
  const want = ['s1', ...ids].sort(compareSnapshotIds);
  const have = [...history.keys()].sort(compareSnapshotIds);
  const linear = have.every((id, i) => id === snapshotIdOf(i + 1));
  if (!linear) problems.push(`history is not s1…sN: ${have.join(' ')}`);
  if (want.join(' ') !== have.join(' '))
    problems.push(`commits reported ${want.join(' ')} but the history holds ${have.join(' ')}`);
  for (const r of committed) {
    const snap = history.get(r.snapshotId!);
    if (!snap) continue;
    if (show(snap) !== show(r.treeAfter))
      problems.push(
        `${r.client} committed ${r.snapshotId} but its tree after the sync differs from that snapshot:\n  tree ${show(r.treeAfter)}\n  snap ${show(snap)}`,
      );
  }
  const inHistory = new Set<string>();
  for (const t of history.values()) for (const h of t.values()) inHistory.add(h);
  for (const c of clients) {
    const mine = c.everything();
    for (const [h, p] of c.offered)
      if (!inHistory.has(h) && !mine.has(h))
        problems.push(`${c.name} lost ${p} (content ${h}): in no snapshot and nowhere in its directory`);
  }
  return problems;
}
