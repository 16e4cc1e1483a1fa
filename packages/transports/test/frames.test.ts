import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { TransportError } from '@dsg/contracts';
import { FrameKind, FrameWriter, ProtocolError, encodeHeader, readFrames, type Frame } from '../src/index.js';

async function parse(chunks: Buffer[], max?: number): Promise<Frame[]> {
  const out: Frame[] = [];
  for await (const f of readFrames(Readable.from(chunks), max)) out.push(f);
  return out;
}

describe('framing', () => {
  it('round-trips frames cut at every byte boundary', async () => {
    const s = new PassThrough();
    const w = new FrameWriter(s);
    await w.sendJson(FrameKind.REQUEST, 7, { op: 'hello' });
    await w.send(FrameKind.DATA, 7, Buffer.from([1, 2, 3]));
    await w.send(FrameKind.END, 7);
    s.end();
    const all: Buffer[] = [];
    for await (const c of s) all.push(c as Buffer);
    const bytes = Buffer.concat(all);
    expect(bytes.length).toBe(9 + 14 + 9 + 3 + 9);
    const oneByOne = await parse([...bytes].map((b) => Buffer.from([b])));
    expect(oneByOne.map((f) => [f.kind, f.id, f.payload.toString('hex')])).toEqual([
      [FrameKind.REQUEST, 7, Buffer.from('{"op":"hello"}').toString('hex')],
      [FrameKind.DATA, 7, '010203'],
      [FrameKind.END, 7, ''],
    ]);
  });

  it('writes a large payload after its header without copying it, and the reader passes it on as it came', async () => {
    const s = new PassThrough({ objectMode: true, highWaterMark: 4 }); // as the in-process channel is
    const written: Buffer[] = [];
    const write = s.write.bind(s) as (c: Buffer) => boolean;
    s.write = ((c: Buffer) => (written.push(c), write(c))) as typeof s.write;
    const w = new FrameWriter(s);
    const big = randomBytes(200_000);
    const frames: Frame[] = [];
    const reading = (async () => {
      for await (const f of readFrames(s)) frames.push(f);
    })();
    await w.send(FrameKind.DATA, 3, big);
    await w.send(FrameKind.DATA, 3, Buffer.from('small'));
    s.end();
    await reading;
    // the big payload is the caller's buffer itself, its header a write of its own; the small frame one write
    expect(written.map((c) => c.length)).toEqual([9, 200_000, 9 + 5]);
    expect(written[1]).toBe(big);
    expect(frames.map((f) => [f.kind, f.id, f.payload.length])).toEqual([
      [FrameKind.DATA, 3, 200_000],
      [FrameKind.DATA, 3, 5],
    ]);
    expect(frames[0]!.payload.equals(big)).toBe(true);
    expect(frames[0]!.payload.buffer).toBe(big.buffer); // not copied on the way in either
    expect(frames[1]!.payload.toString()).toBe('small');
  });

  it('reassembles big payloads from any cut of the stream, and a small frame never pins a big read chunk', async () => {
    const payloads = [randomBytes(300_000), randomBytes(5), randomBytes(70_000), Buffer.alloc(0), randomBytes(1)];
    const bytes = Buffer.concat(payloads.flatMap((p, i) => [encodeHeader(FrameKind.DATA, i + 1, p.length), p]));
    for (const cut of [1, 7, 4096, 65_536, 300_009, bytes.length]) {
      const chunks: Buffer[] = [];
      for (let off = 0; off < bytes.length; off += cut) chunks.push(Buffer.from(bytes.subarray(off, off + cut)));
      const frames = await parse(chunks);
      expect(frames.map((f) => f.id)).toEqual([1, 2, 3, 4, 5]);
      frames.forEach((f, i) => expect(f.payload.equals(payloads[i]!)).toBe(true));
      const reads = new Set(chunks.map((c) => c.buffer));
      // the 5-byte frame, cut out of a big read chunk, is copied out: it does not keep the chunk alive
      if (cut >= 65_536) expect(reads.has(frames[1]!.payload.buffer)).toBe(false);
      // a big payload inside one read chunk is a view of it, not a copy
      if (cut === bytes.length) expect(reads.has(frames[0]!.payload.buffer)).toBe(true);
    }
  });

  it('refuses an oversized frame from its header, before buffering it', async () => {
    await expect(parse([encodeHeader(FrameKind.DATA, 1, 2 << 20)], 1 << 20)).rejects.toThrow(/exceeds the limit/);
  });

  it('refuses unknown kinds, short lengths and a truncated tail', async () => {
    const bad = encodeHeader(FrameKind.DATA, 1, 0);
    bad.writeUInt8(99, 4);
    await expect(parse([bad])).rejects.toBeInstanceOf(ProtocolError);
    const short = Buffer.from([0, 0, 0, 2, 1, 0, 0, 0, 0]);
    await expect(parse([short])).rejects.toThrow(/shorter than its header/);
    const cut = await parse([encodeHeader(FrameKind.DATA, 1, 10), Buffer.from('abc')]).then(
      () => null,
      (e: unknown) => e,
    );
    expect((cut as Error).message).toMatch(/ended inside a frame/);
    // a cut connection is a TransportError, not a protocol disagreement (whose hint says to check versions)
    expect(cut).toBeInstanceOf(TransportError);
    expect(cut).not.toBeInstanceOf(ProtocolError);
    // cut right after a header (a large payload is written after its header): no byte of it came, still a cut
    for (const chunks of [
      [encodeHeader(FrameKind.DATA, 1, 10)],
      [Buffer.concat([encodeHeader(FrameKind.END, 1, 0), encodeHeader(FrameKind.DATA, 2, 5000)])],
    ]) {
      await expect(parse(chunks)).rejects.toThrow(/ended inside a frame \(0 of its \d+ payload bytes\)/);
    }
    // a header-only frame (END) that is complete is not a cut
    expect((await parse([encodeHeader(FrameKind.END, 1, 0)])).map((f) => f.kind)).toEqual([FrameKind.END]);
  });

  it('the in-process channel under backpressure: a slow reader gets every frame, in order, uncopied', async () => {
    const s = new PassThrough({ objectMode: true, highWaterMark: 4 }); // as LocalTransport makes it
    const w = new FrameWriter(s);
    const payloads = Array.from({ length: 40 }, (_, i) => randomBytes(i % 3 === 0 ? 10 : 70_000));
    const sending = (async () => {
      for (const [i, p] of payloads.entries()) await w.send(FrameKind.DATA, i + 1, p);
      s.end();
    })();
    const got: Frame[] = [];
    for await (const f of readFrames(s)) {
      got.push(f);
      await new Promise((r) => setTimeout(r, 1)); // a reader slower than the writer: the writer waits for drain
    }
    await sending;
    expect(got.map((f) => f.id)).toEqual(payloads.map((_, i) => i + 1));
    for (const [i, f] of got.entries()) expect(f.payload.equals(payloads[i]!)).toBe(true);
    // the large ones are the sender's buffers themselves
    expect(got.filter((f, i) => f.payload.buffer === payloads[i]!.buffer).length).toBe(
      payloads.filter((p) => p.length >= 4096).length,
    );
  });

  it('waits for drain when the output is full (backpressure)', async () => {
    const s = new PassThrough({ highWaterMark: 16 });
    const w = new FrameWriter(s);
    let done = false;
    const p = w
      .send(FrameKind.DATA, 1, Buffer.alloc(100))
      .then(() => w.send(FrameKind.DATA, 1, Buffer.alloc(100)))
      .then(() => (done = true));
    await new Promise((r) => setTimeout(r, 50));
    expect(done).toBe(false); // second frame waits: nobody reads
    s.resume();
    await p;
    expect(done).toBe(true);
  });
});
