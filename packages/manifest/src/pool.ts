/**
 * A counting semaphore bounding concurrent I/O (stat, readlink, hash).
 * Hand-written (a dozen lines) rather than a p-limit dependency: the scanner
 * needs only acquire/release around leaf operations.
 */
export class Pool {
  private active = 0;
  // FIFO as array + head index: Array#shift is O(n) on long queues (100k waiters).
  private waiting: (() => void)[] = [];
  private head = 0;

  constructor(private readonly size: number) {
    if (!Number.isInteger(size) || size < 1) throw new RangeError(`pool size must be a positive integer, got ${size}`);
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.size) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.active++;
    try {
      return await fn();
    } finally {
      const next = this.waiting[this.head];
      if (next) {
        this.waiting[this.head++] = undefined as unknown as () => void;
        if (this.head === this.waiting.length) {
          this.waiting = [];
          this.head = 0;
        }
        next(); // hand the slot over without decrementing
      } else this.active--;
    }
  }
}
