import {
  faultPoint,
  TransactionCommitError,
  TransportError,
  type BeginResult,
  type ClientFilesystem,
  type RemoteFilesystem,
  type SnapshotInfo,
  type TransactionId,
  type Transport,
} from '@dsg/contracts';
import { defaultLogger, type TransactionLogger } from './logger.js';

const msg = (e: unknown): string => (e instanceof Error ? e.message : String(e));

export const REMOTE_COMMIT_HINT = 'Check remote filesystem permissions and available space';

type State = 'new' | 'begun' | 'committed' | 'rolled-back';

/**
 * One transaction over the three components (seed section 5):
 * begin client, remote, transport (in that order); on success commit remote
 * then client; on failure roll back remote then client, logging rollback
 * problems as critical without masking the original error; end the
 * transport always.
 *
 * Two ways to use it:
 *   await new Transaction(tx, client, remote, transport).run(async (t) => { …; t.setSnapshot(info); });
 * or
 *   await using t = await new Transaction(tx, client, remote, transport).begin();
 *   …; t.setSnapshot(info); await t.commit();
 *   // leaving the scope without commit() rolls back; the transport is ended either way
 */
export class Transaction implements AsyncDisposable {
  readonly id: TransactionId;
  readonly clientFs: ClientFilesystem;
  readonly remoteFs: RemoteFilesystem;
  readonly transport: Transport;
  readonly #log: TransactionLogger;
  #state: State = 'new';
  #ended = false;
  #begun = { client: false, remote: false, transport: false };
  #snapshot: SnapshotInfo | null = null;
  /** what the remote detected at begin (init or sync, and its work path) */
  remoteBegin: BeginResult | null = null;

  constructor(
    tx: TransactionId,
    clientFs: ClientFilesystem,
    remoteFs: RemoteFilesystem,
    transport: Transport,
    options: { logger?: TransactionLogger } = {},
  ) {
    this.id = tx;
    this.clientFs = clientFs;
    this.remoteFs = remoteFs;
    this.transport = transport;
    this.#log = options.logger ?? defaultLogger;
  }

  get state(): State {
    return this.#state;
  }

  /** The snapshot the remote commit creates (the new manifest's id, message, hash). Required before commit. */
  setSnapshot(info: SnapshotInfo): void {
    this.#snapshot = info;
  }

  /** Begin client, remote, transport. If any fails, whatever began is rolled back and the transport ended. */
  async begin(): Promise<this> {
    if (this.#state !== 'new') throw new Error(`transaction ${this.id} already ${this.#state}`);
    this.#state = 'begun';
    try {
      await this.clientFs.begin(this.id);
      this.#begun.client = true;
      this.remoteBegin = await this.remoteFs.begin(this.id);
      this.#begun.remote = true;
      await this.transport.begin();
      this.#begun.transport = true;
    } catch (e) {
      await this.rollback(e);
      await this.end();
      throw e;
    }
    return this;
  }

  /**
   * Remote first, then client. A remote failure rolls both back and throws
   * TransactionCommitError; a client failure after the remote committed
   * leaves the client journal in place, which recovery finishes.
   */
  async commit(): Promise<void> {
    if (this.#state !== 'begun') throw new Error(`transaction ${this.id} cannot commit: ${this.#state}`);
    const snapshot = this.#snapshot;
    if (!snapshot) {
      const e = new Error(`transaction ${this.id}: setSnapshot() was not called before commit`);
      await this.rollback(e);
      throw e;
    }
    this.#log.info(`Committing transaction ${this.id}`);
    try {
      await this.remoteFs.commit(this.id, snapshot);
    } catch (e) {
      const err = new TransactionCommitError(`Failed to commit remote filesystem: ${msg(e)}`, this.id, {
        recoveryHint: REMOTE_COMMIT_HINT,
        cause: e,
      });
      await this.rollback(err);
      throw err;
    }
    faultPoint('tx.after-remote-commit');
    try {
      await this.clientFs.commit(this.id);
    } catch (e) {
      this.#state = 'committed'; // the remote snapshot exists; nothing may roll it back now
      throw new TransactionCommitError(`Failed to commit client filesystem after remote commit: ${msg(e)}`, this.id, {
        recoveryHint:
          `Snapshot ${snapshot.snapshotId} is committed on the repository; the client journal ` +
          `.dsg/journal/${this.id}.json finishes applying it at the start of the next dsg command (run \`dsg status\`).`,
        cause: e,
      });
    }
    this.#state = 'committed';
    this.#log.info(`Successfully committed transaction ${this.id}`);
  }

  /** Roll back remote then client; both are always tried; problems are logged as critical, never thrown. */
  async rollback(cause?: unknown): Promise<string[]> {
    if (this.#state !== 'begun') return [];
    this.#state = 'rolled-back';
    this.#log.warn(`Rolling back transaction ${this.id} due to: ${msg(cause)}`);
    const errors: string[] = [];
    if (this.#begun.remote || this.#begun.client) {
      // the remote is rolled back even if its begin failed half-way: rollback removes whatever begin made
      try {
        const r = await this.remoteFs.rollback(this.id);
        for (const l of r.leftovers) errors.push(`Remote filesystem rollback left ${l.name}: ${l.error}`);
        this.#log.info(`Rolled back remote filesystem for transaction ${this.id}`);
      } catch (e) {
        if (e instanceof TransportError) {
          // The connection is gone (sshd killed, agent stalled): the rollback is the agent's own job
          // now — it rolls back every transaction of a session that ended — and whatever a dead
          // agent leaves, the next command recovers. Not "CRITICAL: rollback incomplete".
          this.#log.warn(
            `Remote rollback of transaction ${this.id} not sent (${msg(e)}): the agent rolls it back when its session ends; the next dsg command recovers any leftovers`,
          );
        } else {
          errors.push(`Remote filesystem rollback failed: ${msg(e)}`);
          this.#log.error(`Failed to rollback remote filesystem: ${msg(e)}`);
        }
      }
    }
    try {
      const r = await this.clientFs.rollback(this.id);
      for (const l of r.leftovers) errors.push(`Client filesystem rollback left ${l.name}: ${l.error}`);
      this.#log.info(`Rolled back client filesystem for transaction ${this.id}`);
    } catch (e) {
      errors.push(`Client filesystem rollback failed: ${msg(e)}`);
      this.#log.error(`Failed to rollback client filesystem: ${msg(e)}`);
    }
    if (errors.length) this.#log.critical(`Transaction ${this.id} rollback incomplete: ${errors.join('; ')}`);
    return errors;
  }

  /** End the transport session; safe to call twice; errors are logged, never thrown. */
  async end(): Promise<void> {
    if (this.#ended) return;
    this.#ended = true;
    try {
      await this.transport.end();
      this.#log.debug(`Cleaned up transport session for transaction ${this.id}`);
    } catch (e) {
      this.#log.error(`Failed to cleanup transport session: ${msg(e)}`);
    }
  }

  /** begin → fn → commit; any failure in fn rolls back and rethrows the original error; transport ended always. */
  async run<T>(fn: (t: Transaction) => Promise<T>): Promise<T> {
    await this.begin();
    try {
      let result: T;
      try {
        result = await fn(this);
      } catch (e) {
        await this.rollback(e);
        throw e;
      }
      await this.commit();
      return result;
    } finally {
      await this.end();
    }
  }

  /** For `await using`: not committed → roll back; then end the transport. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#state === 'begun') await this.rollback(new Error('transaction left its scope without commit()'));
    await this.end();
  }
}
