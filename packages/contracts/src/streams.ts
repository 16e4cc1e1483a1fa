import type { ByteStream } from './interfaces.js';

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
