import { constants } from 'node:fs';
import { lstat, open, rename, symlink, unlink, type FileHandle } from 'node:fs/promises';
import {
  assertLinkTargetOnDisk,
  assertSafeLinkTarget,
  mkdirsBeneath,
  NotFoundError,
  removeCreated,
  resolveBeneath,
  tempNameBeside,
  ValidationError,
  type ByteStream,
  type ExpectedFile,
  type HasherFactory,
  type ProvenDirs,
  streamVerified,
  FILE_READ_CHUNK,
} from '@dsg/contracts';

/** A temp file opened for an upload, in a parent proved to be a real directory of the work area. */
export interface PreparedWrite {
  full: string;
  tmp: string;
  fh: FileHandle;
  created: string[];
}

/**
 * writeFile's first step (under the Mutex, shared with other writeFiles'
 * path steps: see ZfsRemoteFilesystem.writeFile): parents checked, created
 * without following links (each one pushed to `created` as it is made),
 * checked AGAIN right before the open, and a new temp name beside the
 * target opened with O_CREAT | O_EXCL | O_NOFOLLOW (a link planted at that
 * name is never followed). On failure the caller removes `created`
 * (removeCreated) holding the Mutex alone: removing a directory is not a
 * shared step. `proven`: the backend's ProvenDirs (valid only because this
 * runs in a shared hold: see ProvenDirs).
 */
export async function prepareWrite(
  root: string,
  rel: string,
  created: string[],
  proven?: ProvenDirs,
): Promise<PreparedWrite> {
  created.push(...(await mkdirsBeneath(root, rel, undefined, proven))); // checks every parent, makes the missing ones
  const full = await resolveBeneath(root, rel, proven); // again, after mkdir and right before the open
  const tmp = tempNameBeside(full);
  const fh = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o644);
  return { full, tmp, fh, created };
}

/**
 * writeFile's middle step (NOT under the Mutex: it waits for the network):
 * stream into the open descriptor, verify hash (and size), set mtime. A
 * mismatch is refused. No fsync per file: everything written here is made
 * durable at once by the commit's `zfs snapshot` (it syncs the txg holding
 * these writes), and a crash before the snapshot discards the whole temp
 * clone anyway — a per-file fsync would only force a ZIL commit each.
 * Always closes the descriptor.
 */
export async function streamPrepared(
  w: PreparedWrite,
  rel: string,
  data: ByteStream,
  expected: ExpectedFile,
  hasher: HasherFactory,
): Promise<{ size: number }> {
  try {
    return { size: await streamVerified(w.fh, rel, data, expected, hasher) };
  } finally {
    await w.fh.close();
  }
}

/** writeFile's last step (under the Mutex, shared): parents still real directories, then one rename (a link at the target is replaced, not followed). */
export async function finishWrite(root: string, rel: string, write: PreparedWrite, proven?: ProvenDirs): Promise<void> {
  await resolveBeneath(root, rel, proven);
  await rename(write.tmp, write.full);
}

/** Drop a failed upload's temp file and the directories it created (holding the Mutex alone); never throws. */
export async function dropWrite(root: string, write: PreparedWrite): Promise<void> {
  await unlink(write.tmp).catch(() => undefined);
  await removeCreated(root, write.created);
}

/** A relative symlink that passes the link gate of @dsg/contracts, on disk too; parents never through a link. Run under the Mutex. */
export async function writeLinkInside(root: string, rel: string, target: string): Promise<void> {
  const full = await resolveBeneath(root, rel);
  assertSafeLinkTarget(rel, target);
  await assertLinkTargetOnDisk(root, rel, target);
  const created = await mkdirsBeneath(root, rel);
  const tmp = tempNameBeside(full);
  try {
    await resolveBeneath(root, rel);
    if ((await lstat(full).catch(() => null))?.isDirectory()) {
      throw new ValidationError(`refused to replace directory ${JSON.stringify(rel)} with a link`, { path: rel });
    }
    await symlink(target, tmp);
    await rename(tmp, full);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    await removeCreated(root, created);
    throw e;
  }
}

/** Remove a file or link; missing is fine; a directory is refused; never through a linked parent. Run under the Mutex. */
export async function deleteInside(root: string, rel: string): Promise<void> {
  const full = await resolveBeneath(root, rel);
  try {
    const st = await lstat(full);
    if (st.isDirectory())
      throw new ValidationError(`refused to delete ${JSON.stringify(rel)}: a directory`, { path: rel });
    await unlink(full);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}

/** A regular file under root opened read-only, or why not; never through a symlinked parent, never following a link. */
async function openRegular(
  root: string,
  rel: string,
  proven?: ProvenDirs,
): Promise<FileHandle | 'absent' | 'link' | 'directory' | 'special file'> {
  const full = await resolveBeneath(root, rel, proven); // never through a symlinked parent, as the posix backends read
  // O_NOFOLLOW + fstat on the open descriptor: a file swapped for a symlink between a
  // check and the open (a hostile repository) is refused, never read through; O_NONBLOCK:
  // opening a FIFO planted in the repository must not hang the agent.
  let fh;
  try {
    fh = await open(full, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return 'absent';
    if (code === 'ELOOP') return 'link';
    throw e;
  }
  const st = await fh.stat();
  if (st.isFile()) return fh;
  await fh.close();
  return st.isDirectory() ? 'directory' : 'special file';
}

/** A file under root as a stream, or null if absent (or not a regular file). */
export async function openInside(root: string, rel: string): Promise<ByteStream | null> {
  const fh = await openRegular(root, rel);
  return typeof fh === 'string' ? null : fh.createReadStream({ highWaterMark: FILE_READ_CHUNK });
}

/** copyFile's source: a regular file under root, opened read-only (the caller closes it); absent → NotFoundError, anything else → ValidationError. `proven`: only in a shared hold (see ProvenDirs). */
export async function openCopySource(root: string, rel: string, proven?: ProvenDirs): Promise<FileHandle> {
  const fh = await openRegular(root, rel, proven);
  if (fh === 'absent')
    throw new NotFoundError(`no file ${JSON.stringify(rel)} to copy in this transaction's work area`);
  if (typeof fh === 'string') throw new ValidationError(`${JSON.stringify(rel)} is a ${fh}, not a file`, { path: rel });
  return fh;
}
