import { describe, expect, it } from 'vitest';
import { retryWhile } from '../src/index.js';

const quick = { timeoutMs: 60_000, baseDelayMs: 1, maxDelayMs: 2 };

describe('retryWhile', () => {
  it('tries again while the result says so, and returns the first one that does not', async () => {
    const answers = ['busy', 'busy', 'ok'];
    let calls = 0;
    const r = await retryWhile(
      () => Promise.resolve(answers[calls++]!),
      (a) => a === 'busy',
      quick,
    );
    expect(r).toBe('ok');
    expect(calls).toBe(3);
  });

  it('returns at once when the first answer is final', async () => {
    let calls = 0;
    expect(
      await retryWhile(
        () => Promise.resolve(++calls),
        () => false,
        quick,
      ),
    ).toBe(1);
    expect(calls).toBe(1);
  });

  it('gives up with the last answer once the next pause would pass the deadline', async () => {
    let calls = 0;
    const r = await retryWhile(
      () => Promise.resolve(`busy ${++calls}`),
      () => true,
      { timeoutMs: 0, baseDelayMs: 1, maxDelayMs: 1 },
    );
    expect(r).toBe('busy 1');
    expect(calls).toBe(1);
  });

  it('does not retry a thrown error', async () => {
    let calls = 0;
    await expect(
      retryWhile(
        () => {
          calls++;
          return Promise.reject(new Error('broken'));
        },
        () => true,
        quick,
      ),
    ).rejects.toThrow('broken');
    expect(calls).toBe(1);
  });
});
