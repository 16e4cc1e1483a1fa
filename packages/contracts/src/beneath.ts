import { lstat, mkdir, rmdir } from 'node:fs/promises';
import path from 'node:path';
import { ValidationError } from './errors.js';
import type { Mutex } from './mutex.js';
import { assertSafeRelativePath, NAME_MAX, resolveBeneath } from './safe-path.js';

function errno(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | null)?.code;
}

/**
 * Directories (absolute paths) proved real directories — not links, not
 * files — by lstat, so the path checks of the next writes need not lstat
 * them again (on a FUSE filesystem each lstat is a round trip).
 *
 * The rule that makes it safe: use it ONLY inside a shared hold
 * (`runShared`/`acquireShared`) of the Mutex it was made with, never in an
 * exclusive one. Shared holders only lstat, make real directories, create
 * regular files and rename regular files over names; only an exclusive
 * holder may plant a link or remove or replace a directory (see Mutex). So
 * a directory proved by one shared holder is still one for every later
 * shared holder until an exclusive holder is granted the Mutex; every read
 * or add first compares the Mutex's `exclusiveGeneration` with the one the
 * proofs were made under and forgets them all when it moved on. (Inside an
 * exclusive hold the proof would be read after that holder may have
 * removed what it proved.) Bounded: past MAX_PROVEN entries it starts over.
 */
export class ProvenDirs {
  static readonly MAX_PROVEN = 65536;
  private readonly dirs = new Set<string>();
  private generation: number;

  constructor(private readonly mutex: Mutex) {
    this.generation = mutex.exclusiveGeneration;
  }

  /** Whether `dir` was proved a real directory since the last exclusive holder was granted the Mutex. */
  has(dir: string): boolean {
    this.current();
    return this.dirs.has(dir);
  }

  /** Record `dir`, just lstat'ed (or made) and found a real directory. */
  add(dir: string): void {
    this.current();
    if (this.dirs.size >= ProvenDirs.MAX_PROVEN) this.dirs.clear();
    this.dirs.add(dir);
  }

  /** How many directories are proved now. */
  get size(): number {
    this.current();
    return this.dirs.size;
  }

  private current(): void {
    const g = this.mutex.exclusiveGeneration;
    if (g === this.generation) return;
    this.dirs.clear();
    this.generation = g;
  }
}

/**
 * Create the missing parents of `rel` inside `tree`, one component at a
 * time, never through a symlink: each component is lstat'ed (a new one
 * right after its mkdir) and must be a real directory. (`mkdir -p` would
 * follow a link planted at any component.) The path is validated first,
 * before anything is created. Returns the directories created, outermost
 * first (undo them with removeCreated). `mode` is before the umask.
 *
 * Run it under the lock that keeps link writers out of the tree (see
 * Mutex), and follow it with resolveBeneath right before the open. With
 * `proven` (only in a shared hold of its Mutex), a parent proved before is
 * not lstat'ed, and each one found (or made) a real directory is added.
 */
export async function mkdirsBeneath(tree: string, rel: string, mode = 0o777, proven?: ProvenDirs): Promise<string[]> {
  assertSafeRelativePath(rel);
  const parts = rel.split('/');
  if (parts.some((c) => Buffer.byteLength(c) > NAME_MAX)) {
    throw new ValidationError(
      `refused path ${JSON.stringify(rel.slice(0, 200))}: a component is longer than ${NAME_MAX} bytes`,
      { path: rel.slice(0, 4096) },
    );
  }
  const created: string[] = [];
  let dir = tree;
  let missing = false;
  for (const c of parts.slice(0, -1)) {
    dir = path.join(dir, c);
    if (!missing && proven?.has(dir)) continue;
    let st = missing
      ? null
      : await lstat(dir).catch((e: unknown) => (errno(e) === 'ENOENT' ? null : Promise.reject(e as Error)));
    if (!st) {
      missing = true;
      try {
        await mkdir(dir, { mode });
        created.push(dir);
      } catch (e) {
        if (errno(e) !== 'EEXIST') throw e;
      }
      st = await lstat(dir);
    }
    if (!st.isDirectory()) {
      throw new ValidationError(
        `refused path ${JSON.stringify(rel.slice(0, 200))}: parent ${JSON.stringify(path.relative(tree, dir))} is ${st.isSymbolicLink() ? 'a symlink' : 'not a directory'}`,
        {
          path: rel.slice(0, 4096),
        },
      );
    }
    proven?.add(dir);
  }
  return created;
}

/**
 * Remove the directories a failed write created (mkdirsBeneath's result),
 * deepest first, re-checking each one's parents; stops at the first that
 * cannot go (not empty: someone else uses it). Never throws.
 */
export async function removeCreated(tree: string, created: readonly string[]): Promise<void> {
  for (const d of [...created].reverse()) {
    try {
      await resolveBeneath(tree, path.relative(tree, d));
      await rmdir(d);
    } catch {
      return;
    }
  }
}

/**
 * The physical half of the link gate, for the link `rel -> target` about to
 * be written in `tree` (after assertSafeLinkTarget, which leaves no `..`
 * after a name): resolve the target against the tree as it is on disk.
 * Every existing component it passes through must be a real directory — a
 * target that traverses another link (even one pointing inside; perhaps one
 * an older agent let in) or a file is refused with a ValidationError naming
 * the link. The final component may be anything, or missing.
 */
export async function assertLinkTargetOnDisk(tree: string, rel: string, target: string): Promise<void> {
  const resolved = path.posix.normalize(path.posix.join(path.posix.dirname(rel), target));
  try {
    await resolveBeneath(tree, resolved);
  } catch (e) {
    if (!(e instanceof ValidationError)) throw e;
    throw new ValidationError(
      `refused link ${JSON.stringify(rel.slice(0, 200))} -> ${JSON.stringify(target.slice(0, 200))}: on disk, ${e.message}`,
      { path: rel.slice(0, 4096) },
    );
  }
}
