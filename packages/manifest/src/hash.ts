import { createHash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { xxh3 } from '@node-rs/xxhash';
import type { StreamHasher } from '@dsg/contracts';

/** An xxh3-64 hash as dsg writes it: 16 lowercase hex digits. */
export const HEX16 = /^[0-9a-f]{16}$/;

/** xxh3-64 digests are written as 16 lowercase hex digits, zero-padded, as the original writes them. */
export function hex16(n: bigint): string {
  return n.toString(16).padStart(16, '0');
}

/** A streaming xxh3-64 hasher, seed 0. Usable as a contracts HasherFactory. */
export function createXxh3Hasher(): StreamHasher {
  const h = xxh3.Xxh3.withSeed(0n);
  return {
    update(chunk: Uint8Array): void {
      h.update(chunk);
    },
    digest(): string {
      return hex16(h.digest());
    },
  };
}

export function hashBytes(data: Uint8Array | string): string {
  return hex16(xxh3.xxh64(typeof data === 'string' ? Buffer.from(data, 'utf8') : data));
}

/** Chunk size of streamed hashing: memory stays bounded by it whatever the file size. */
export const HASH_CHUNK = 1 << 20;

/**
 * xxh3-64 of an open file, read sequentially into one reused buffer: memory
 * stays bounded by the buffer (1 MiB by default) whatever the file size.
 * Returns the hash and the number of bytes read; `onBytes` hears each chunk
 * as it is read (progress within a big file).
 */
export async function hashFileHandle(
  fh: FileHandle,
  buf: Buffer = Buffer.allocUnsafe(HASH_CHUNK),
  onBytes?: (n: number) => void,
): Promise<{ hash: string; bytes: number }> {
  const h = createXxh3Hasher();
  let bytes = 0;
  for (;;) {
    const { bytesRead } = await fh.read(buf, 0, buf.length, null);
    if (bytesRead === 0) break;
    h.update(buf.subarray(0, bytesRead));
    bytes += bytesRead;
    onBytes?.(bytesRead);
  }
  return { hash: h.digest(), bytes };
}

/** xxh3-64 of a file's bytes, streamed in 1 MiB chunks. */
export async function hashFile(file: string): Promise<string> {
  const fh = await open(file, 'r');
  try {
    return (await hashFileHandle(fh)).hash;
  } finally {
    await fh.close();
  }
}

/** What ByteSums found: the bytes' count, xxh3-64 (as hashBytes) and SHA-256 (hex). */
export interface Sums {
  size: number;
  hash: string;
  sha256: string;
}

/**
 * Size and hashes of bytes taken as they pass (`tap`), for bytes that are
 * written in pieces and never held whole: a new manifest goes to the
 * client's staging this way, and its sums then go with it to the repository.
 */
export class ByteSums {
  #size = 0;
  readonly #xxh = xxh3.Xxh3.withSeed(0n);
  readonly #sha = createHash('sha256');
  #done = false;

  /** The chunks as they are, summed on the way; the sums are ready once the consumer has read to the end. */
  *tap(chunks: Iterable<Uint8Array>): Generator<Uint8Array> {
    for (const c of chunks) {
      this.#size += c.length;
      this.#xxh.update(c);
      this.#sha.update(c);
      yield c;
    }
    this.#done = true;
  }

  /** The sums; throws when the tapped chunks were not read to the end (they would be of a part). */
  result(): Sums {
    if (!this.#done) throw new Error('ByteSums: the bytes were not read to the end');
    return { size: this.#size, hash: hex16(this.#xxh.digest()), sha256: this.#sha.copy().digest('hex') };
  }
}
