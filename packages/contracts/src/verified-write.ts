import type { FileHandle } from 'node:fs/promises';
import { ValidationError } from './errors.js';
import type { ByteStream, ExpectedFile, HasherFactory } from './interfaces.js';

/** THE shape of an expected content hash: lowercase hex, 1–128 digits (xxh3-64 is 16; room for longer ones). */
export const EXPECTED_HASH_RE = /^[0-9a-f]{1,128}$/;

/**
 * THE hash-verified write (the backends' uploads, the client's staged
 * downloads): stream `data` into an open file,
 * hashing as it goes; a hash (or, when given, size) other than `expected` is
 * refused with HASH_MISMATCH before the caller renames anything into place;
 * then the mtime is set when given and, with `fsync`, the bytes are flushed.
 * The caller owns the descriptor (opens and closes it) and the temp name.
 * Returns the number of bytes written.
 */
export async function streamVerified(
  handle: FileHandle,
  rel: string,
  data: ByteStream,
  expected: ExpectedFile,
  hasher: HasherFactory,
  options: {
    fsync?: boolean;
    /** the error for a mismatch (default: ValidationError HASH_MISMATCH), for a caller that knows better what it means */
    mismatch?: (m: { field: 'hash' | 'size'; expected: string; got: string }) => Error;
  } = {},
): Promise<number> {
  if (!EXPECTED_HASH_RE.test(expected.hash.toLowerCase())) {
    throw new ValidationError(`expected hash for ${rel} is not hex`, { path: rel, field: 'hash' });
  }
  const h = hasher();
  let size = 0;
  for await (const chunk of data) {
    h.update(chunk);
    for (let off = 0; off < chunk.byteLength;) off += (await handle.write(chunk, off)).bytesWritten;
    size += chunk.byteLength;
  }
  const want = expected.hash.toLowerCase();
  const got = h.digest().toLowerCase();
  const refuse = (field: 'hash' | 'size', exp: string, act: string): Error =>
    options.mismatch?.({ field, expected: exp, got: act }) ??
    new ValidationError(
      `${field} mismatch for ${rel}: expected ${exp}, got ${act}`,
      { path: rel, field },
      {
        code: 'HASH_MISMATCH',
        recoveryHint: 'The file changed or was damaged in transit; run the sync again.',
      },
    );
  if (got !== want) throw refuse('hash', want, got);
  if (expected.size !== undefined && expected.size !== size) throw refuse('size', String(expected.size), String(size));
  if (expected.mtime !== undefined) {
    const t = new Date(expected.mtime);
    if (!Number.isNaN(t.getTime())) await handle.utimes(t, t);
  }
  if (options.fsync) await handle.sync();
  return size;
}
