import type { FileHandle } from 'node:fs/promises';
import { ValidationError } from './errors.js';
import type { BatchFile, ByteStream } from './interfaces.js';

/**
 * How much a file stream that goes on the wire reads at a time: the agent
 * protocol's DATA frame size, so each read is one frame and the receiver
 * writes it with one call (the 64 KiB default costs four of each).
 */
export const FILE_READ_CHUNK = 256 * 1024;

/**
 * The bytes of an open file from its start, FILE_READ_CHUNK at a time; the
 * handle stays open (its owner closes it). A new buffer per chunk: the
 * consumer may still hold the previous one.
 */
export async function* chunksOf(fh: FileHandle): ByteStream {
  for (let position = 0; ;) {
    const { bytesRead, buffer } = await fh.read(Buffer.alloc(FILE_READ_CHUNK), 0, FILE_READ_CHUNK, position);
    if (bytesRead === 0) return;
    position += bytesRead;
    yield buffer.subarray(0, bytesRead);
  }
}

/** Every byte of a stream, in one Buffer. */
export async function readAll(stream: ByteStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.from(c.buffer, c.byteOffset, c.byteLength));
  return Buffer.concat(chunks);
}

/** A stream of one chunk (metadata written through writeFile). */
export async function* streamOf(bytes: Uint8Array): ByteStream {
  await Promise.resolve();
  yield bytes;
}

/** Chunks made as they are read (a manifest serialized in pieces) as a ByteStream. */
export async function* streamOfChunks(chunks: Iterable<Uint8Array>): ByteStream {
  await Promise.resolve();
  for (const c of chunks) yield c;
}

/**
 * Cuts one stream into consecutive parts of known sizes: the data of a batch
 * of files sent back to back (the agent protocol's `writeFiles`, and the
 * client's split of a batched download). Each `next(size)` is a stream of
 * exactly `size` bytes, to be read to its end before the next part is asked
 * for; the source ending early fails that part. `end()` fails when bytes are
 * left over. Chunks are sliced, never copied, so memory stays one chunk.
 */
export class StreamSplitter {
  private readonly it: AsyncIterator<Uint8Array>;
  private rest: Uint8Array | null = null;
  private busy = false;

  constructor(
    source: ByteStream,
    /** the error for a source that ends early or runs long: what the caller's protocol calls it */
    private readonly fail: (why: string) => Error = (why) => new Error(why),
  ) {
    this.it = source[Symbol.asyncIterator]();
  }

  /** The next `size` bytes as a stream; `what` names the part in the error when the source ends early. */
  next(size: number, what = 'a part'): ByteStream {
    if (this.busy) throw this.fail(`${what} was asked for before the part before it was read to its end`);
    this.busy = true;
    return this.part(size, what);
  }

  private async *part(size: number, what: string): ByteStream {
    let left = size;
    try {
      while (left > 0) {
        let chunk = this.rest;
        this.rest = null;
        if (!chunk) {
          const r = await this.it.next();
          if (r.done) throw this.fail(`the data ended ${left} bytes short of ${what}`);
          chunk = r.value;
        }
        if (chunk.byteLength > left) {
          this.rest = chunk.subarray(left);
          chunk = chunk.subarray(0, left);
        }
        left -= chunk.byteLength;
        if (chunk.byteLength) yield chunk;
      }
    } finally {
      this.busy = false;
    }
  }

  /** Every part has been read: fails when the source still has bytes. */
  async end(): Promise<void> {
    if (this.rest?.byteLength) throw this.fail(`${this.rest.byteLength} bytes more than the parts announced`);
    for (let r = await this.it.next(); !r.done; r = await this.it.next()) {
      if (r.value.byteLength) {
        await this.it.return?.();
        throw this.fail('more bytes than the parts announced');
      }
    }
  }

  /** Stop reading the source (after a failure): its producer is released. */
  async cancel(): Promise<void> {
    this.rest = null;
    await this.it.return?.();
  }
}

/** Exactly `size` bytes of `s`, or an error from `fail` naming how far off it was (a file that changed since it was hashed). */
export async function* exactly(s: ByteStream, size: number, fail: (why: string) => Error): ByteStream {
  let n = 0;
  for await (const c of s) {
    n += c.byteLength;
    if (n > size) throw fail(`it is longer than the ${size} bytes expected`);
    yield c;
  }
  if (n < size) throw fail(`it is ${n} bytes, not the ${size} expected`);
}

/**
 * A `writeFiles` batch, one file at a time through `write` (a backend's
 * `writeFile`, with whatever the caller wraps around each), in order:
 * what the agent does with a batch, and what a test double can do.
 */
export async function writeFilesEach(
  files: readonly BatchFile[],
  data: ByteStream,
  write: (f: BatchFile, part: ByteStream) => Promise<{ size: number }>,
): Promise<{ sizes: number[] }> {
  const split = new StreamSplitter(data, (why) => new ValidationError(`batch data refused: ${why}`));
  const sizes: number[] = [];
  try {
    for (const f of files) sizes.push((await write(f, split.next(f.expected.size, f.path))).size);
    await split.end();
  } catch (e) {
    await split.cancel().catch(() => {});
    throw e;
  }
  return { sizes };
}
