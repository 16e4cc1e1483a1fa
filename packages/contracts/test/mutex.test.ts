import { describe, expect, it } from 'vitest';
import { Mutex } from '../src/index.js';

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

/** A holder that records when it starts and ends, and ends when told. */
function holder(log: string[], name: string): { fn: () => Promise<string>; end: () => void } {
  let end!: () => void;
  const ended = new Promise<void>((r) => (end = r));
  return {
    fn: async () => {
      log.push(`${name}+`);
      await ended;
      log.push(`${name}-`);
      return name;
    },
    end,
  };
}

describe('Mutex: exclusive holders', () => {
  it('runs one at a time, in call order', async () => {
    const m = new Mutex();
    const log: string[] = [];
    const hs = ['a', 'b', 'c'].map((n) => holder(log, n));
    const done = hs.map((h) => m.run(h.fn));
    await tick();
    expect(log).toEqual(['a+']);
    hs[2]!.end();
    hs[1]!.end();
    await tick();
    expect(log).toEqual(['a+']);
    hs[0]!.end();
    expect(await Promise.all(done)).toEqual(['a', 'b', 'c']);
    expect(log).toEqual(['a+', 'a-', 'b+', 'b-', 'c+', 'c-']);
  });

  it('a failed holder passes its error on and does not break the chain', async () => {
    const m = new Mutex();
    const first = m.run(() => Promise.reject(new Error('boom')));
    const second = m.run(() => Promise.resolve(2));
    await expect(first).rejects.toThrow('boom');
    await expect(second).resolves.toBe(2);
  });

  it('acquire hands out a release that only the first call counts', async () => {
    const m = new Mutex();
    const release = await m.acquire();
    let second = false;
    const next = m.acquire().then((r) => {
      second = true;
      return r;
    });
    await tick();
    expect(second).toBe(false);
    release();
    const r2 = await next;
    expect(second).toBe(true);
    release(); // a second call must not release the next holder's turn
    let third = false;
    void m.acquire().then(() => (third = true));
    await tick();
    expect(third).toBe(false);
    r2();
    await tick();
    expect(third).toBe(true);
  });
});

describe('Mutex: shared holders', () => {
  it('shared holders run together, never with an exclusive one', async () => {
    const m = new Mutex();
    const log: string[] = [];
    const r1 = holder(log, 'r1');
    const r2 = holder(log, 'r2');
    const w = holder(log, 'w');
    const r3 = holder(log, 'r3');
    const done = [m.runShared(r1.fn), m.runShared(r2.fn), m.run(w.fn), m.runShared(r3.fn)];
    await tick();
    // r3 came after the waiting w: it waits for w (call order; w cannot starve)
    expect(log).toEqual(['r1+', 'r2+']);
    r2.end();
    await tick();
    expect(log).toEqual(['r1+', 'r2+', 'r2-']);
    r3.end();
    r1.end();
    await tick();
    expect(log).toEqual(['r1+', 'r2+', 'r2-', 'r1-', 'w+']);
    w.end();
    await Promise.all(done);
    expect(log).toEqual(['r1+', 'r2+', 'r2-', 'r1-', 'w+', 'w-', 'r3+', 'r3-']);
  });

  it('an exclusive holder keeps every later shared one out until it releases', async () => {
    const m = new Mutex();
    const log: string[] = [];
    const w = holder(log, 'w');
    const rs = ['r1', 'r2', 'r3'].map((n) => holder(log, n));
    const done = [m.run(w.fn), ...rs.map((r) => m.runShared(r.fn))];
    await tick();
    expect(log).toEqual(['w+']);
    w.end();
    await tick();
    expect(log).toEqual(['w+', 'w-', 'r1+', 'r2+', 'r3+']);
    for (const r of rs) r.end();
    await Promise.all(done);
  });

  it('a failed shared holder releases its share', async () => {
    const m = new Mutex();
    await expect(m.runShared(() => Promise.reject(new Error('x')))).rejects.toThrow('x');
    await expect(m.run(() => Promise.resolve('ok'))).resolves.toBe('ok');
  });
});

describe('Mutex: exclusiveGeneration', () => {
  it('counts exclusive holders when they are granted, not shared ones', async () => {
    const m = new Mutex();
    expect(m.exclusiveGeneration).toBe(0);
    await m.runShared(() => Promise.resolve());
    expect(m.exclusiveGeneration).toBe(0);
    await m.run(() => {
      expect(m.exclusiveGeneration).toBe(1); // already counted while it runs
      return Promise.resolve();
    });
    expect(m.exclusiveGeneration).toBe(1);
  });

  it('does not move while a shared holder holds the lock, even with an exclusive one waiting', async () => {
    const m = new Mutex();
    const log: string[] = [];
    const s = holder(log, 's');
    const shared = m.runShared(s.fn);
    const exclusive = m.run(() => Promise.resolve());
    await tick();
    expect(m.exclusiveGeneration).toBe(0);
    s.end();
    await Promise.all([shared, exclusive]);
    expect(m.exclusiveGeneration).toBe(1);
    const release = await m.acquire();
    expect(m.exclusiveGeneration).toBe(2);
    release();
  });
});
