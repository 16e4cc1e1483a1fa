import { describe, expect, it } from 'vitest';
import { forEachLimited } from '../src/index.js';

const tick = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('forEachLimited', () => {
  it('never runs more than the limit at once and runs every item', async () => {
    let running = 0;
    let peak = 0;
    const done: number[] = [];
    await forEachLimited([...Array(20).keys()], 4, async (i) => {
      running++;
      peak = Math.max(peak, running);
      await tick(i % 3);
      running--;
      done.push(i);
    });
    expect(peak).toBe(4);
    expect(done.sort((x, y) => x - y)).toEqual([...Array(20).keys()]);
  });

  it('stops starting work after a failure, lets running work settle, rethrows the first error', async () => {
    const started: number[] = [];
    let settled = 0;
    const err = await forEachLimited([...Array(10).keys()], 2, async (i) => {
      started.push(i);
      await tick(5);
      settled++;
      if (i === 1) throw new Error('one');
      if (i === 2) throw new Error('two');
    }).catch((e: unknown) => e);
    expect((err as Error).message).toBe('one');
    expect(started.length).toBeLessThan(10);
    expect(settled).toBe(started.length);
  });
});
