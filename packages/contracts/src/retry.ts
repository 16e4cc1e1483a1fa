import { setTimeout as sleep } from 'node:timers/promises';

/** How long a retry loop may keep trying: a deadline, and a doubling pause between tries. */
export interface RetryPolicy {
  /** give up once the next pause would end past this many ms after the first try */
  timeoutMs: number;
  /** the first pause */
  baseDelayMs: number;
  /** pauses double up to this */
  maxDelayMs: number;
}

/**
 * Run `attempt` again while `again(result)` says so (say, a command that
 * answered "busy"), pausing baseDelayMs, doubling up to maxDelayMs, until the
 * next pause would pass the deadline; returns the last result either way
 * (the caller reports it). Exceptions from `attempt` are not retried.
 */
export async function retryWhile<T>(
  attempt: () => Promise<T>,
  again: (result: T) => boolean,
  policy: RetryPolicy,
): Promise<T> {
  const deadline = Date.now() + policy.timeoutMs;
  let delay = policy.baseDelayMs;
  for (;;) {
    const r = await attempt();
    if (!again(r) || Date.now() + delay >= deadline) return r;
    await sleep(delay);
    delay = Math.min(delay * 2, policy.maxDelayMs);
  }
}
