import { describe, expect, it } from 'vitest';
import { forEachLimited, Semaphore } from '../src/index.js';

/** A promise the test settles by hand. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((r) => (open = r));
  return { promise, open };
}

describe('forEachLimited', () => {
  it('refuses a limit that is not an integer (NaN would start no worker and report success)', async () => {
    for (const limit of [Number.NaN, Number.POSITIVE_INFINITY, 1.5])
      await expect(forEachLimited([1], limit, () => Promise.resolve())).rejects.toThrow(RangeError);
  });

  it('runs every item, never more than `limit` at once, in order of start', async () => {
    let running = 0;
    let max = 0;
    const started: number[] = [];
    await forEachLimited([...Array(20).keys()], 3, async (i) => {
      started.push(i);
      running++;
      max = Math.max(max, running);
      await new Promise((r) => setImmediate(r));
      running--;
    });
    expect(started).toEqual([...Array(20).keys()]);
    expect(max).toBe(3);
  });

  it('after a failure starts nothing new, lets the running ones settle, then throws the first error', async () => {
    const slow = gate();
    const started: number[] = [];
    let settled = false;
    const p = forEachLimited([0, 1, 2, 3, 4], 2, async (i) => {
      started.push(i);
      if (i === 0) {
        await slow.promise;
        settled = true;
        return;
      }
      throw new Error(`boom ${i}`);
    });
    let done = false;
    void p.catch(() => (done = true));
    await new Promise((r) => setImmediate(r));
    expect(done).toBe(false); // item 0 still running: no rejection yet
    slow.open();
    await expect(p).rejects.toThrow('boom 1');
    expect(settled).toBe(true);
    expect(started).toEqual([0, 1]);
  });

  it('treats a limit below one as one, and an empty list as done', async () => {
    const seen: number[] = [];
    await forEachLimited([1, 2], 0, (i) => Promise.resolve(void seen.push(i)));
    expect(seen).toEqual([1, 2]);
    await expect(forEachLimited([], 4, () => Promise.reject(new Error('never')))).resolves.toBeUndefined();
  });
});

describe('Semaphore', () => {
  it('bounds the work in flight and hands slots over first come, first served', async () => {
    const s = new Semaphore(2);
    const gates = [gate(), gate(), gate(), gate()];
    const order: number[] = [];
    let running = 0;
    let max = 0;
    const all = gates.map((g, i) =>
      s.run(async () => {
        order.push(i);
        running++;
        max = Math.max(max, running);
        await g.promise;
        running--;
        return i;
      }),
    );
    await new Promise((r) => setImmediate(r));
    expect(order).toEqual([0, 1]);
    gates[1]!.open();
    await all[1];
    await new Promise((r) => setImmediate(r));
    expect(order).toEqual([0, 1, 2]);
    for (const g of gates) g.open();
    expect(await Promise.all(all)).toEqual([0, 1, 2, 3]);
    expect(order).toEqual([0, 1, 2, 3]);
    expect(max).toBe(2);
  });

  it('frees the slot when the work fails', async () => {
    const s = new Semaphore(1);
    await expect(s.run(() => Promise.reject(new Error('x')))).rejects.toThrow('x');
    await expect(s.run(() => Promise.resolve(7))).resolves.toBe(7);
  });

  it.each([0, -1, 1.5, Number.NaN])('refuses size %s', (n) => {
    expect(() => new Semaphore(n)).toThrow(RangeError);
  });
});
