import { lstat, mkdir, rmdir } from 'node:fs/promises';
import path from 'node:path';
import { ValidationError } from './errors.js';
import { assertSafeRelativePath, NAME_MAX, resolveBeneath } from './safe-path.js';

function errno(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | null)?.code;
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
 * Mutex), and follow it with resolveBeneath right before the open.
 */
export async function mkdirsBeneath(tree: string, rel: string, mode = 0o777): Promise<string[]> {
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
