/**
 * A counting semaphore bounding concurrent I/O (stat, readlink, hash).
 * Hand-written (a dozen lines) rather than a p-limit dependency: the scanner
 * needs only acquire/release around leaf operations.
 */
export class Pool {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly size: number) {
    if (!Number.isInteger(size) || size < 1) throw new RangeError(`pool size must be a positive integer, got ${size}`);
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.size) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.active++;
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next(); // hand the slot over without decrementing
      else this.active--;
    }
  }
}
