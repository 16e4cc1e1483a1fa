import type { FileHandle } from 'node:fs/promises';
import { ValidationError } from './errors.js';
import type { ByteStream, ExpectedFile, HasherFactory } from './interfaces.js';

/**
 * THE hash-verified write of the backends: stream `data` into an open file,
 * hashing as it goes; a hash (or, when given, size) other than `expected` is
 * refused with HASH_MISMATCH before the caller renames anything into place;
 * then the mtime is set when given and, with `fsync`, the bytes are flushed.
 * The caller owns the descriptor (opens and closes it) and the temp name.
 * Returns the number of bytes written.
 */
export async function streamVerified(
  fh: FileHandle,
  rel: string,
  data: ByteStream,
  expected: ExpectedFile,
  hasher: HasherFactory,
  o: { fsync?: boolean } = {},
): Promise<number> {
  const h = hasher();
  let size = 0;
  for await (const chunk of data) {
    h.update(chunk);
    for (let off = 0; off < chunk.byteLength; ) off += (await fh.write(chunk, off)).bytesWritten;
    size += chunk.byteLength;
  }
  const want = expected.hash.toLowerCase();
  const got = h.digest().toLowerCase();
  const hint = 'The file changed or was damaged in transit; run the sync again.';
  if (got !== want) throw new ValidationError(`hash mismatch for ${rel}: expected ${want}, got ${got}`, { path: rel, field: 'hash' }, { code: 'HASH_MISMATCH', recoveryHint: hint });
  if (expected.size !== undefined && expected.size !== size) {
    throw new ValidationError(`size mismatch for ${rel}: expected ${expected.size}, got ${size}`, { path: rel, field: 'size' }, { code: 'HASH_MISMATCH', recoveryHint: hint });
  }
  if (expected.mtime !== undefined) {
    const t = new Date(expected.mtime);
    if (!Number.isNaN(t.getTime())) await fh.utimes(t, t);
  }
  if (o.fsync) await fh.sync();
  return size;
}
