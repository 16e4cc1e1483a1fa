import { DsgError, LockedError } from '@dsg/contracts';
import type { RepositoryLock } from '@dsg/transports/server';

/** Takes a repository's lock for replication: a transaction holding it makes that repository refused (LOCKED), nothing sent. */
export async function lockForReplication(
  lock: RepositoryLock,
  name: string,
  holder: { user: string; host: string; pid: number; since: string },
): Promise<void> {
  try {
    await lock.acquire(holder);
  } catch (e) {
    if (e instanceof LockedError) {
      throw new DsgError('LOCKED', `${name}: ${e.message}; a transaction is open, replication refused (nothing sent)`, {
        recoveryHint: 'Run replicate again when the sync has ended (the timer does so by itself).',
        cause: e,
      });
    }
    throw e;
  }
}
