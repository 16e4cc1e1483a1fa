/**
 * The lock's heartbeat on a filesystem that stops answering (a wedged FUSE
 * mount): one touch in flight at a time, never a queue of them. The
 * filesystem below the lock is the stand-in here: `utimes` never settles.
 */
import type * as FsPromises from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { RepositoryLock } from '../src/server-entry.js';
import { holder, tempDir } from './helpers.js';

const fsState = vi.hoisted(() => ({ calls: 0, release: null as (() => void) | null }));
vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof FsPromises>();
  return {
    ...real,
    utimes: (...args: Parameters<typeof real.utimes>) => {
      fsState.calls++;
      // the wedged mount: the call neither succeeds nor fails until released
      return new Promise<void>((resolve) => {
        fsState.release = () => void real.utimes(...args).then(resolve, resolve);
      });
    },
  };
});

let tmp: { dir: string; remove(): Promise<void> };
beforeEach(async () => (tmp = await tempDir()));
afterEach(async () => {
  vi.useRealTimers();
  await tmp.remove();
});

describe('RepositoryLock heartbeat', () => {
  it('skips its beats while a touch is still in flight, and goes on once it returns', async () => {
    const lock = new RepositoryLock(join(tmp.dir, 'lock'), { heartbeatMs: 10 });
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    await lock.acquire(holder());
    try {
      vi.advanceTimersByTime(100); // ten beats
      expect(lock.heartbeats).toBe(1);
      expect(fsState.calls).toBe(1);
      fsState.release!();
      await vi.waitFor(() => {
        vi.advanceTimersByTime(10);
        expect(lock.heartbeats).toBe(2);
      });
      expect(fsState.calls).toBe(2);
    } finally {
      fsState.release?.();
      await lock.release();
    }
  });
});
