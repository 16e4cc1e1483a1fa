import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { lstat, mkdir, open, rename, symlink, unlink, utimes } from 'node:fs/promises';
import path from 'node:path';
import { assertSafeRelativePath, resolveInside, ValidationError, type ByteStream, type ExpectedFile, type HasherFactory } from '@dsg/contracts';

function tempName(full: string): string {
  return path.join(path.dirname(full), `.${path.basename(full).slice(0, 100)}.dsg-tmp-${randomBytes(4).toString('hex')}`);
}

/** Rename into place; if that fails (e.g. the target is a directory), the temp is not left behind. */
async function renameOrDrop(tmp: string, full: string): Promise<void> {
  try {
    await rename(tmp, full);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
}

/**
 * Stream into `<root>/<rel>`: parents created, a temp name beside the
 * target, hash (and size) verified, then one rename. A mismatch removes the
 * temp file and is refused. No fsync per file: everything written here is
 * made durable at once by the commit's `zfs snapshot` (it syncs the txg
 * holding these writes), and a crash before the snapshot discards the whole
 * temp clone anyway — a per-file fsync would only force a ZIL commit each.
 */
export async function writeVerified(root: string, rel: string, data: ByteStream, expected: ExpectedFile, hasher: HasherFactory): Promise<{ size: number }> {
  const full = await resolveInside(root, rel);
  await mkdir(path.dirname(full), { recursive: true });
  await resolveInside(root, rel); // again: a parent may have been created through a racing symlink
  const tmp = tempName(full);
  const h = hasher();
  let size = 0;
  const fh = await open(tmp, 'wx', 0o644);
  try {
    for await (const chunk of data) {
      h.update(chunk);
      size += chunk.byteLength;
      let off = 0;
      while (off < chunk.byteLength) off += (await fh.write(chunk, off)).bytesWritten;
    }
  } catch (e) {
    await fh.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
  await fh.close();
  const digest = h.digest();
  if (digest !== expected.hash.toLowerCase() || (expected.size !== undefined && expected.size !== size)) {
    await unlink(tmp).catch(() => undefined);
    throw new ValidationError(`content of ${rel} does not match: expected ${expected.hash}${expected.size === undefined ? '' : `/${expected.size} bytes`}, got ${digest}/${size} bytes`, { path: rel, field: 'hash' }, {
      code: 'HASH_MISMATCH',
      recoveryHint: 'The file changed or was corrupted in transit; run the sync again.',
    });
  }
  if (expected.mtime) {
    const t = new Date(expected.mtime);
    if (!Number.isNaN(t.getTime())) await utimes(tmp, t, t);
  }
  await renameOrDrop(tmp, full);
  return { size };
}

/** A relative symlink whose target stays inside the repository. */
export async function writeLinkInside(root: string, rel: string, target: string): Promise<void> {
  assertSafeRelativePath(rel);
  const resolved = path.posix.normalize(path.posix.join(path.posix.dirname(rel), target));
  if (typeof target !== 'string' || target === '' || target.includes('\0') || path.posix.isAbsolute(target) || resolved === '..' || resolved.startsWith('../')) {
    throw new ValidationError(`refused link ${JSON.stringify(rel)} → ${JSON.stringify(target)}: target must be relative and inside the repository`, { path: rel });
  }
  const full = await resolveInside(root, rel);
  await mkdir(path.dirname(full), { recursive: true });
  const tmp = tempName(full);
  await symlink(target, tmp);
  await renameOrDrop(tmp, full);
}

/** Remove a file or link; missing is fine; a directory is refused. */
export async function deleteInside(root: string, rel: string): Promise<void> {
  const full = await resolveInside(root, rel);
  try {
    const st = await lstat(full);
    if (st.isDirectory()) throw new ValidationError(`refused to delete ${JSON.stringify(rel)}: a directory`, { path: rel });
    await unlink(full);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}

/** A file under root as a stream, or null if absent (or not a regular file). */
export async function openInside(root: string, rel: string): Promise<ByteStream | null> {
  const full = await resolveInside(root, rel);
  // O_NOFOLLOW + fstat on the open descriptor: a file swapped for a symlink between a
  // check and the open (a hostile repository) is refused, never read through; O_NONBLOCK:
  // opening a FIFO planted in the repository must not hang the agent.
  let fh;
  try {
    fh = await open(full, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ELOOP') return null;
    throw e;
  }
  if (!(await fh.stat()).isFile()) {
    await fh.close();
    return null;
  }
  return fh.createReadStream();
}
