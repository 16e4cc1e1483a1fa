/**
 * What one queued chunk costs beyond its bytes (a Buffer object and its slot),
 * counted against the limit: a peer sending payloads of one byte must not
 * queue millions of them under a limit that counts only bytes.
 */
export const CHUNK_OVERHEAD = 128;

/**
 * A bounded queue of byte chunks between the frame reader (producer) and a
 * stream consumer. push() resolves only once the queue is under its limit,
 * and the reader awaits it, so a slow consumer stops the reader and the
 * transport's flow control reaches the sender. Once the consumer is gone
 * (finished, failed or returned early) pushes are dropped.
 */
export class ByteQueue implements AsyncIterable<Uint8Array> {
  private chunks: Uint8Array[] = [];
  private bytes = 0;
  private ended = false;
  private error: Error | null = null;
  private discarding = false;
  private wakeConsumer: (() => void) | null = null;
  private wakeProducer: (() => void) | null = null;
  private iterated = false;

  constructor(
    private readonly limit = 4 << 20,
    private readonly onCancel: () => void = () => {},
  ) {}

  async push(chunk: Uint8Array): Promise<void> {
    // an empty chunk carries nothing: not queued (nor counted, nor a wake-up)
    if (this.discarding || this.ended || this.error || chunk.length === 0) return;
    this.chunks.push(chunk);
    this.bytes += chunk.length + CHUNK_OVERHEAD;
    this.wake();
    while (this.bytes > this.limit && !this.discarding && !this.error) {
      await new Promise<void>((r) => (this.wakeProducer = r));
    }
  }

  end(): void {
    this.ended = true;
    this.wake();
  }

  fail(err: Error): void {
    if (this.ended && this.chunks.length === 0) return;
    this.error ??= err;
    this.wake();
  }

  /** Drop everything from now on (the consumer no longer listens). */
  discard(): void {
    this.discarding = true;
    this.chunks = [];
    this.bytes = 0;
    this.wake();
  }

  private wake(): void {
    const c = this.wakeConsumer;
    this.wakeConsumer = null;
    c?.();
    if (this.bytes <= this.limit || this.discarding || this.error) {
      const p = this.wakeProducer;
      this.wakeProducer = null;
      p?.();
    }
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    if (this.iterated) throw new Error('a ByteQueue can be read once');
    this.iterated = true;
    let finished = false;
    try {
      for (;;) {
        if (this.error) throw this.error;
        const c = this.chunks.shift();
        if (c) {
          this.bytes -= c.length + CHUNK_OVERHEAD;
          this.wake();
          yield c;
          continue;
        }
        if (this.ended) {
          finished = true;
          return;
        }
        await new Promise<void>((r) => (this.wakeConsumer = r));
      }
    } finally {
      if (!finished && !this.error) this.onCancel();
      this.discard();
    }
  }
}
