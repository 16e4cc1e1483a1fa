import { lstat, mkdir, rmdir } from 'node:fs/promises';
import path from 'node:path';
import { assertSafeRelativePath, resolveBeneath, ValidationError } from '@dsg/contracts';
import { errno } from './fs-util.js';

/** NAME_MAX on Linux, macOS and the BSDs. */
const NAME_MAX = 255;

/**
 * Create the missing parents of `rel` inside `tree`, one component at a
 * time, never through a symlink: each component is lstat'ed (a new one
 * right after its mkdir) and must be a real directory. (`mkdir -p` would
 * follow a link planted at any component.) The path is validated first,
 * before anything is created. Returns the directories created, outermost
 * first. Must run under the repository's Serial, and be followed by
 * resolveBeneath right before the open.
 */
export async function mkdirsBeneath(tree: string, rel: string, mode = 0o777): Promise<string[]> {
  assertSafeRelativePath(rel);
  const parts = rel.split('/');
  if (parts.some((c) => Buffer.byteLength(c) > NAME_MAX)) {
    throw new ValidationError(`refused path ${JSON.stringify(rel.slice(0, 200))}: a component is longer than ${NAME_MAX} bytes`, { path: rel.slice(0, 4096) });
  }
  const created: string[] = [];
  let dir = tree;
  let missing = false;
  for (const c of parts.slice(0, -1)) {
    dir = path.join(dir, c);
    let st = missing ? null : await lstat(dir).catch((e: unknown) => (errno(e) === 'ENOENT' ? null : Promise.reject(e as Error)));
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
      throw new ValidationError(`refused path ${JSON.stringify(rel.slice(0, 200))}: parent ${JSON.stringify(path.relative(tree, dir))} is ${st.isSymbolicLink() ? 'a symlink' : 'not a directory'}`, {
        path: rel.slice(0, 4096),
      });
    }
  }
  return created;
}

/**
 * The physical half of the link gate (after assertSafeLinkTarget, which
 * leaves no `..` after a name): resolve the target against the tree as it
 * is on disk. Every existing component it passes through must be a real
 * directory — a target that traverses another link (even one pointing
 * inside; perhaps one an older agent let in) or a file is refused. The
 * final component may be anything, or missing.
 */
export async function assertLinkTargetOnDisk(tree: string, rel: string, target: string): Promise<void> {
  const resolved = path.posix.normalize(path.posix.join(path.posix.dirname(rel), target));
  try {
    await resolveBeneath(tree, resolved);
  } catch (e) {
    if (!(e instanceof ValidationError)) throw e;
    throw new ValidationError(`refused link ${JSON.stringify(rel.slice(0, 200))} -> ${JSON.stringify(target.slice(0, 200))}: on disk, ${e.message}`, { path: rel.slice(0, 4096) });
  }
}

/** Remove directories a failed write created (deepest first), re-checking each one's parents; never throws. */
export async function removeCreated(tree: string, created: string[]): Promise<void> {
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
 * One at a time, in call order: a promise chain. Every mutation of a work
 * area (begin, writeFile's check → mkdir → open and its final rename,
 * writeLink, deleteFile, commit, rollback, recover) runs inside it, so two
 * concurrent requests of one caller can never interleave a check with
 * another's change of the same tree (the agent escape: a link planted
 * between writeFile's check and its mkdir/open). The data of an upload is
 * streamed OUTSIDE it (into the already open file descriptor): a section
 * never waits for the network, so a slow or stalled upload cannot block
 * the others, and nothing waiting here can be waiting on a frame.
 * Sections are short and local (lstat/mkdir/open/rename), so serialising
 * them costs nothing measurable next to the transfers.
 */
export class Serial {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(fn: () => Promise<T>): Promise<T> {
    const r = this.tail.then(fn);
    this.tail = r.catch(() => undefined);
    return r;
  }
}
