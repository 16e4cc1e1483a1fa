/**
 * Run `fn` over `items` with at most `limit` in flight (at least one). The
 * first failure stops new items from starting; the running ones settle, then
 * that first error is rethrown — so nothing is still writing while the
 * caller cleans up or rolls back. Items start in order.
 */
export async function forEachLimited<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  // NaN would start no worker and "finish" with nothing done (a limit below one means one)
  if (!Number.isInteger(limit)) throw new RangeError(`forEachLimited: limit must be an integer, got ${limit}`);
  let next = 0;
  let failed: { e: unknown } | null = null;
  const worker = async (): Promise<void> => {
    while (failed === null && next < items.length) {
      const item = items[next++]!;
      try {
        await fn(item);
      } catch (e) {
        failed ??= { e };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  if (failed !== null) throw (failed as { e: unknown }).e;
}

/**
 * A counting semaphore: `run(fn)` waits for one of `size` slots, first come
 * first served. For work whose items are found while it runs (a tree walk
 * that bounds its leaf I/O), where forEachLimited's fixed list does not fit.
 */
export class Semaphore {
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
