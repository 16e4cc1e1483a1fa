import { describe, expect, it } from 'vitest';
import { ByteQueue, CHUNK_OVERHEAD } from '../src/byte-queue.js';

/** How many pushes of `chunk` resolve at once before the queue makes the producer wait. */
async function acceptedBeforeWait(q: ByteQueue, chunk: Uint8Array, max: number): Promise<number> {
  for (let i = 0; i < max; i++) {
    let resolved = false;
    void q.push(chunk).then(() => (resolved = true));
    await Promise.resolve();
    await Promise.resolve();
    if (!resolved) return i + 1;
  }
  return max;
}

describe('ByteQueue', () => {
  it('counts a per-chunk cost: one-byte chunks hit the limit after limit / (1 + overhead) of them', async () => {
    const limit = 64 * 1024;
    const q = new ByteQueue(limit);
    const n = await acceptedBeforeWait(q, Buffer.alloc(1), 100_000);
    expect(n).toBe(Math.floor(limit / (1 + CHUNK_OVERHEAD)) + 1);
  });

  it('queues no empty chunk: a flood of them neither grows the queue nor reaches the consumer', async () => {
    const q = new ByteQueue(1024);
    expect(await acceptedBeforeWait(q, Buffer.alloc(0), 50_000)).toBe(50_000);
    await q.push(Buffer.from('x'));
    q.end();
    const got: string[] = [];
    for await (const c of q) got.push(Buffer.from(c).toString());
    expect(got).toEqual(['x']);
  });

  it('a consumer reading frees room: the waiting producer goes on, and every byte arrives in order', async () => {
    const q = new ByteQueue(4 * (10 + CHUNK_OVERHEAD));
    const sent = Array.from({ length: 200 }, (_, i) => Buffer.from(String(i).padStart(10, '0')));
    const producer = (async () => {
      for (const c of sent) await q.push(c);
      q.end();
    })();
    const got: Buffer[] = [];
    for await (const c of q) got.push(Buffer.from(c));
    await producer;
    expect(Buffer.concat(got).equals(Buffer.concat(sent))).toBe(true);
  });
});
