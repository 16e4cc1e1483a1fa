import { constants } from 'node:fs';
import { chmod, lstat, open, opendir, rm, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import {
  FILE_READ_CHUNK,
  NotFoundError,
  resolveBeneath,
  ValidationError,
  type ByteStream,
  type ProvenDirs,
} from '@dsg/contracts';

export function errno(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | null)?.code;
}

/** Every directory under (and including) dir, parents first; symlinks are not followed. */
export async function listDirs(dir: string): Promise<string[]> {
  const out: string[] = [dir];
  for (let i = 0; i < out.length; i++) {
    const d = await opendir(out[i]!);
    for await (const ent of d) if (ent.isDirectory()) out.push(path.join(out[i]!, ent.name));
  }
  return out;
}

/**
 * Remove a tree that may hold read-only directories (a sealed snapshot, or a
 * work area interrupted while being sealed). Only DIRECTORIES are made
 * writable: files may be hard links shared with live snapshots, and chmod on
 * one would change the snapshot's file. Missing is fine.
 */
export async function forceRemove(target: string): Promise<boolean> {
  let st;
  try {
    st = await lstat(target);
  } catch (e) {
    if (errno(e) === 'ENOENT') return false;
    throw e;
  }
  if (st.isDirectory()) for (const d of await listDirs(target)) await chmod(d, 0o755);
  await rm(target, { recursive: true, force: true });
  return true;
}

/**
 * A file of a repository tree, opened read-only, or null when it is absent:
 * never through a symlinked parent, the file itself never a link, a
 * directory or a special file (ValidationError). The caller closes it.
 * `proven`: see resolveBeneath (only in a shared hold of its Mutex).
 */
export async function openFileIn(tree: string, rel: string, proven?: ProvenDirs): Promise<FileHandle | null> {
  const full = await resolveBeneath(tree, rel, proven);
  let fh;
  try {
    // O_NONBLOCK: opening a FIFO planted in the repository must not hang the reader
    fh = await open(full, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    if (errno(e) === 'ENOENT' || errno(e) === 'ENOTDIR') return null;
    if (errno(e) === 'ELOOP')
      throw new ValidationError(`${JSON.stringify(rel)} is a symlink, not a file`, { path: rel });
    throw e;
  }
  const st = await fh.stat();
  if (!st.isFile()) {
    await fh.close();
    throw new ValidationError(
      `${JSON.stringify(rel)} is a ${st.isDirectory() ? 'directory' : 'special file'}, not a file`,
      { path: rel },
    );
  }
  return fh;
}

/** A file of a repository tree as a stream (both posix backends' reads), or null when it is absent; see openFileIn. */
export async function readFrom(tree: string, rel: string): Promise<ByteStream | null> {
  const fh = await openFileIn(tree, rel);
  return fh ? fh.createReadStream({ highWaterMark: FILE_READ_CHUNK }) : null;
}

/** copyFile's source: like openFileIn, and absent is the contract's NotFoundError. */
export async function openCopySource(tree: string, rel: string, proven?: ProvenDirs): Promise<FileHandle> {
  const fh = await openFileIn(tree, rel, proven);
  if (!fh) throw new NotFoundError(`no file ${JSON.stringify(rel)} to copy in this transaction's work area`);
  return fh;
}

/**
 * Uploads and copies still streaming, per transaction: counted from the
 * moment their temp file (or source) is open, so a commit queued behind
 * them sees them and refuses rather than seal a half-written tree.
 */
export class StreamingUploads {
  private readonly n = new Map<string, number>();
  start(tx: string): void {
    this.n.set(tx, (this.n.get(tx) ?? 0) + 1);
  }
  end(tx: string): void {
    const left = (this.n.get(tx) ?? 1) - 1;
    if (left > 0) this.n.set(tx, left);
    else this.n.delete(tx);
  }
  count(tx: string): number {
    return this.n.get(tx) ?? 0;
  }
}
