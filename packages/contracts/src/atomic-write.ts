import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';

function errno(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | null)?.code;
}

/**
 * A fresh hidden name beside `full`, for a file or link written there and
 * then renamed into place. Short and fixed-length whatever the target's
 * name (a target of NAME_MAX bytes still gets a valid temp name), and the
 * one pattern (`.dsg-tmp-<12 hex>`) every writer leaves behind on a crash.
 */
export function tempNameBeside(full: string): string {
  return path.join(path.dirname(full), `.dsg-tmp-${randomBytes(6).toString('hex')}`);
}

/**
 * fsync a directory so the renames and new entries in it survive a crash.
 * A filesystem that cannot sync a directory at all (EINVAL, ENOTSUP: there
 * is no more durability to be had) is not an error; any other failure (EIO)
 * is thrown.
 */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await fh.sync();
  } catch (e) {
    if (errno(e) !== 'EINVAL' && errno(e) !== 'ENOTSUP') throw e;
  } finally {
    await fh.close();
  }
}

/** All of `chunk` at the file's position (a write may take less than it was given). */
async function writeAll(fh: FileHandle, chunk: Uint8Array): Promise<void> {
  for (let at = 0; at < chunk.length;) at += (await fh.write(chunk, at, chunk.length - at)).bytesWritten;
}

/**
 * THE atomic replace of a small file: a new temp name beside it (created
 * O_EXCL | O_NOFOLLOW, so nothing planted at that name is followed), the
 * bytes written and fsynced, one rename over `file`, then the directory
 * fsynced. A reader sees the old or the new content, never a part; after a
 * crash the file holds one of the two. The temp file is removed on any
 * failure. The parent directory must exist. `mode` is before the umask
 * (default 0o666). `content` may come in chunks (a large manifest is
 * written as it is serialized, never whole in memory).
 */
export async function writeFileAtomic(
  file: string,
  content: string | Uint8Array | Iterable<Uint8Array> | AsyncIterable<Uint8Array>,
  options: { mode?: number } = {},
): Promise<void> {
  const tmp = tempNameBeside(file);
  const fh = await open(
    tmp,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
    options.mode ?? 0o666,
  );
  try {
    try {
      if (typeof content === 'string' || content instanceof Uint8Array) await fh.writeFile(content);
      else for await (const chunk of content) await writeAll(fh, chunk);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
  await fsyncDir(path.dirname(file));
}
