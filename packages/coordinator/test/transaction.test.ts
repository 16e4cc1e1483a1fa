import { describe, expect, it } from 'vitest';
import {
  newTransactionId,
  TransactionCommitError,
  TransportError,
  type BeginResult,
  type CleanupReport,
  type ClientFilesystem,
  type RemoteFilesystem,
  type SnapshotInfo,
  type Transport,
} from '@dsg/contracts';
import { Transaction, type TransactionLogger } from '../src/index.js';

// Fakes of the three LOWER components: they record calls and throw at a named step.
type Calls = string[];
function fakes(failAt: string[] = [], leftovers: string[] = []) {
  const calls: Calls = [];
  const step = (name: string): void => {
    calls.push(name);
    if (failAt.includes(name)) throw new Error(`boom at ${name}`);
    if (failAt.includes(`${name}:transport`)) throw new TransportError('the agent closed the connection');
  };
  const report = (who: string): CleanupReport => ({
    removed: [],
    leftovers: leftovers.includes(who) ? [{ name: `${who}-thing`, error: 'busy' }] : [],
  });
  const client = {
    root: '/nowhere',
    begin: () => Promise.resolve(step('client.begin')),
    commit: () => Promise.resolve(step('client.commit')),
    rollback: () => Promise.resolve().then(() => (step('client.rollback'), report('client'))),
  } as unknown as ClientFilesystem;
  const remote = {
    begin: () => Promise.resolve().then((): BeginResult => (step('remote.begin'), { pattern: 'sync', workPath: '/w' })),
    commit: (_tx: string, s: SnapshotInfo) => Promise.resolve(step(`remote.commit:${s.snapshotId}`)),
    rollback: () => Promise.resolve().then(() => (step('remote.rollback'), report('remote'))),
  } as unknown as RemoteFilesystem;
  const transport: Transport = {
    begin: () => Promise.resolve(step('transport.begin')),
    end: () => Promise.resolve(step('transport.end')),
  };
  const logs: { level: string; m: string }[] = [];
  const logger: TransactionLogger = {
    debug: (m) => logs.push({ level: 'debug', m }),
    info: (m) => logs.push({ level: 'info', m }),
    warn: (m) => logs.push({ level: 'warn', m }),
    error: (m) => logs.push({ level: 'error', m }),
    critical: (m) => logs.push({ level: 'critical', m }),
  };
  return { calls, client, remote, transport, logs, logger };
}
const SNAP: SnapshotInfo = {
  snapshotId: 's3',
  message: 'm',
  manifestHash: 'h',
  user: 'u',
  createdAt: '2026-01-01T00:00:00Z',
};

describe('Transaction.run', () => {
  it('begins client, remote, transport; commits remote then client; ends the transport', async () => {
    const f = fakes();
    const t = new Transaction(newTransactionId(), f.client, f.remote, f.transport, { logger: f.logger });
    const out = await t.run(async (tx) => {
      f.calls.push('work');
      tx.setSnapshot(SNAP);
      return Promise.resolve(42);
    });
    expect(out).toBe(42);
    expect(f.calls).toEqual([
      'client.begin',
      'remote.begin',
      'transport.begin',
      'work',
      'remote.commit:s3',
      'client.commit',
      'transport.end',
    ]);
    expect(t.remoteBegin).toEqual({ pattern: 'sync', workPath: '/w' });
    expect(t.state).toBe('committed');
  });

  it('on failure in the work rolls back remote then client, rethrows the original error, ends the transport', async () => {
    const f = fakes();
    const t = new Transaction(newTransactionId(), f.client, f.remote, f.transport, { logger: f.logger });
    const original = new Error('upload failed');
    await expect(t.run(() => Promise.reject(original))).rejects.toBe(original);
    expect(f.calls).toEqual([
      'client.begin',
      'remote.begin',
      'transport.begin',
      'remote.rollback',
      'client.rollback',
      'transport.end',
    ]);
    expect(f.logs.some((l) => l.level === 'critical')).toBe(false);
  });

  it('a rollback that throws or leaves something is logged as critical and does not mask the original error', async () => {
    const f = fakes(['remote.rollback'], ['client']);
    const t = new Transaction(newTransactionId(), f.client, f.remote, f.transport, { logger: f.logger });
    const original = new Error('upload failed');
    await expect(t.run(() => Promise.reject(original))).rejects.toBe(original);
    expect(f.calls).toContain('client.rollback'); // still tried after the remote's failed
    const critical = f.logs.filter((l) => l.level === 'critical');
    expect(critical).toHaveLength(1);
    expect(critical[0]!.m).toMatch(
      /rollback incomplete: Remote filesystem rollback failed: boom at remote.rollback; Client filesystem rollback left client-thing: busy/,
    );
  });

  it('a remote rollback that cannot be sent (connection gone) is a warning, not a critical incomplete rollback: the agent rolls back itself', async () => {
    const f = fakes(['remote.rollback:transport']);
    const t = new Transaction(newTransactionId(), f.client, f.remote, f.transport, { logger: f.logger });
    const original = new TransportError('the SSH connection was lost');
    await expect(t.run(() => Promise.reject(original))).rejects.toBe(original);
    expect(f.calls).toContain('client.rollback');
    expect(f.logs.filter((l) => l.level === 'critical' || l.level === 'error')).toEqual([]);
    expect(f.logs.some((l) => l.level === 'warn' && /rolls it back when its session ends/.test(l.m))).toBe(true);
  });

  it('a remote commit failure is a TransactionCommitError with the seed hint; both sides roll back', async () => {
    const f = fakes(['remote.commit:s3']);
    const tx = newTransactionId();
    const t = new Transaction(tx, f.client, f.remote, f.transport, { logger: f.logger });
    const err = await t.run((x) => Promise.resolve(x.setSnapshot(SNAP))).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransactionCommitError);
    expect(err).toMatchObject({
      transactionId: tx,
      recoveryHint: 'Check remote filesystem permissions and available space',
    });
    expect((err as Error).message).toMatch(/^Failed to commit remote filesystem: boom/);
    expect(f.calls.slice(-4)).toEqual(['remote.commit:s3', 'remote.rollback', 'client.rollback', 'transport.end']);
    expect(f.calls).not.toContain('client.commit');
  });

  it('a client commit failure after the remote committed is recoverable by the journal; nothing is rolled back', async () => {
    const f = fakes(['client.commit']);
    const tx = newTransactionId();
    const t = new Transaction(tx, f.client, f.remote, f.transport, { logger: f.logger });
    const err = await t.run((x) => Promise.resolve(x.setSnapshot(SNAP))).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransactionCommitError);
    expect((err as Error).message).toMatch(/^Failed to commit client filesystem after remote commit/);
    expect((err as TransactionCommitError).recoveryHint).toContain(`.dsg/journal/${tx}.json`);
    expect((err as TransactionCommitError).recoveryHint).toContain('s3');
    expect(f.calls).not.toContain('remote.rollback');
    expect(f.calls).not.toContain('client.rollback');
    expect(f.calls.at(-1)).toBe('transport.end');
  });

  for (const failing of ['client.begin', 'remote.begin', 'transport.begin']) {
    it(`a failure in ${failing} rolls back what began and ends the transport`, async () => {
      const f = fakes([failing]);
      const t = new Transaction(newTransactionId(), f.client, f.remote, f.transport, { logger: f.logger });
      let ran = false;
      await expect(t.run(() => Promise.resolve((ran = true)))).rejects.toThrow(`boom at ${failing}`);
      expect(ran).toBe(false);
      expect(f.calls).toContain('client.rollback');
      expect(f.calls.filter((c) => c === 'transport.end')).toHaveLength(1);
      expect(f.calls).not.toContain('remote.commit:s3');
    });
  }

  it('a transport end() failure is logged, not thrown', async () => {
    const f = fakes(['transport.end']);
    const t = new Transaction(newTransactionId(), f.client, f.remote, f.transport, { logger: f.logger });
    await t.run((x) => Promise.resolve(x.setSnapshot(SNAP)));
    expect(f.logs.some((l) => l.level === 'error' && l.m.includes('transport'))).toBe(true);
  });

  it('commit without setSnapshot rolls back and throws', async () => {
    const f = fakes();
    const t = new Transaction(newTransactionId(), f.client, f.remote, f.transport, { logger: f.logger });
    await expect(t.run(() => Promise.resolve())).rejects.toThrow(/setSnapshot/);
    expect(f.calls).toContain('remote.rollback');
  });
});

describe('await using', () => {
  it('leaving the scope without commit rolls back and ends the transport', async () => {
    const f = fakes();
    await expect(
      (async () => {
        await using t = await new Transaction(newTransactionId(), f.client, f.remote, f.transport, {
          logger: f.logger,
        }).begin();
        t.setSnapshot(SNAP);
        throw new Error('work failed');
      })(),
    ).rejects.toThrow('work failed');
    expect(f.calls).toEqual([
      'client.begin',
      'remote.begin',
      'transport.begin',
      'remote.rollback',
      'client.rollback',
      'transport.end',
    ]);
  });

  it('commit() inside the scope commits; dispose only ends the transport', async () => {
    const f = fakes();
    {
      await using t = await new Transaction(newTransactionId(), f.client, f.remote, f.transport, {
        logger: f.logger,
      }).begin();
      t.setSnapshot(SNAP);
      await t.commit();
    }
    expect(f.calls).toEqual([
      'client.begin',
      'remote.begin',
      'transport.begin',
      'remote.commit:s3',
      'client.commit',
      'transport.end',
    ]);
  });
});
