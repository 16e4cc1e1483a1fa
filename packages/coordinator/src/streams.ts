import type { ByteStream } from '@dsg/contracts';

export async function readAll(s: ByteStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(Buffer.from(c.buffer, c.byteOffset, c.byteLength));
  return Buffer.concat(chunks);
}

export async function* once(b: Uint8Array): ByteStream {
  await Promise.resolve();
  yield b;
}

/** Pass a stream through, counting its bytes. */
export async function* counted(s: ByteStream, onBytes: (n: number) => void): ByteStream {
  for await (const c of s) {
    onBytes(c.byteLength);
    yield c;
  }
}
