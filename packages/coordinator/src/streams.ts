import type { ByteStream } from '@dsg/contracts';

// one definition of reading a stream whole and of a one-chunk stream: contracts'
export { streamOf as once, streamOfChunks, readAll } from '@dsg/contracts';

/** Pass a stream through, counting its bytes. */
export async function* counted(s: ByteStream, onBytes: (n: number) => void): ByteStream {
  for await (const c of s) {
    onBytes(c.byteLength);
    yield c;
  }
}
