import { PassThrough } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TransportError, newTransactionId, type SnapshotInfo, type TransactionId } from '@dsg/contracts';
import { AgentClient, FrameKind, FrameWriter, LocalTransport, openRemote, readFrames } from '../src/index.js';
import { parseJson } from '../src/frames.js';
import { FakeRemoteFilesystem } from './fake-fs.js';
import { fakeServer, holder, tempDir } from './helpers.js';

let tmp: { dir: string; remove(): Promise<void> };
beforeEach(async () => (tmp = await tempDir()));
afterEach(async () => tmp.remove());

const snap = (id: string): SnapshotInfo => ({
  snapshotId: id,
  message: 'm',
  manifestHash: 'h',
  user: 'alice',
  createdAt: new Date().toISOString(),
});

/**
 * A scripted agent on a pipe pair: answers hello (with or without
 * heartbeats), then answers nothing, as a SIGSTOPped agent would. `stall()`
 * also stops its PINGs.
 */
function scriptedAgent(opts: { heartbeats: boolean; answerAfterMs?: number }) {
  const toAgent = new PassThrough();
  const toClient = new PassThrough();
  const w = new FrameWriter(toClient);
  let pinger: NodeJS.Timeout | null = null;
  const aborted: Error[] = [];
  void (async () => {
    for await (const f of readFrames(toAgent)) {
      if (f.kind !== FrameKind.REQUEST) continue;
      const msg = parseJson(f.payload, 'request');
      if (msg['op'] === 'hello') {
        const hb = typeof msg['heartbeatMs'] === 'number' && opts.heartbeats ? msg['heartbeatMs'] : undefined;
        if (hb) pinger = setInterval(() => void w.send(FrameKind.PING, 0).catch(() => {}), hb);
        await w.sendJson(FrameKind.RESPONSE, f.id, {
          ok: true,
          result: {
            protocol: '1.0',
            agent: 'scripted',
            host: 'h',
            pid: 1,
            maxFramePayload: 1 << 20,
            ...(hb ? { heartbeatMs: hb } : {}),
          },
        });
      } else if (opts.answerAfterMs !== undefined) {
        setTimeout(
          () => void w.sendJson(FrameKind.RESPONSE, f.id, { ok: true, result: [] }).catch(() => {}),
          opts.answerAfterMs,
        );
      }
    }
  })().catch(() => {});
  return {
    channel: { input: toClient, output: toAgent, abort: (e: Error) => aborted.push(e) },
    aborted,
    stall: () => pinger && clearInterval(pinger),
    stop: () => {
      if (pinger) clearInterval(pinger);
      toClient.end();
    },
  };
}

describe('stalled agent detection (hello.heartbeatMs + PING frames)', () => {
  it('an agent that stops sending (PINGs included) fails the pending call within the idle timeout and aborts the channel', async () => {
    const agent = scriptedAgent({ heartbeats: true });
    const c = new AgentClient(agent.channel, { idleTimeoutMs: 600 });
    const hello = await c.handshake();
    expect(hello.heartbeatMs).toBe(150);
    // PINGs alone keep an idle session alive well past the timeout
    await new Promise((r) => setTimeout(r, 1500));
    expect(agent.aborted).toEqual([]);
    agent.stall();
    // no clock in the check: without the watchdog the call waits forever, and the test's own timeout says so
    const err = await c.listSnapshots().then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(TransportError);
    expect((err as Error).message).toMatch(/sent nothing for 0\.6 s/);
    expect(agent.aborted).toHaveLength(1);
    await expect(c.exists()).rejects.toBeInstanceOf(TransportError);
    agent.stop();
  }, 60_000);

  it('an agent without heartbeats (older release) is not watched: a slow answer still arrives', async () => {
    const agent = scriptedAgent({ heartbeats: false, answerAfterMs: 1200 });
    const c = new AgentClient(agent.channel, { idleTimeoutMs: 300 });
    expect((await c.handshake()).heartbeatMs).toBeUndefined();
    expect(await c.listSnapshots()).toEqual([]);
    expect(agent.aborted).toEqual([]);
    agent.stop();
  });

  it('the real AgentServer keeps a client alive through an operation far longer than the timeout', async () => {
    class SlowCommit extends FakeRemoteFilesystem {
      override async commit(tx: TransactionId, s: SnapshotInfo): Promise<void> {
        await new Promise((r) => setTimeout(r, 1500));
        return super.commit(tx, s);
      }
    }
    const { server, repos } = fakeServer(tmp.dir);
    repos.set('proj', new SlowCommit(`${tmp.dir}/proj`));
    const t = new LocalTransport({ mode: 'in-process', server });
    try {
      const c = await openRemote(t, 'proj', { idleTimeoutMs: 400 });
      expect(c.hello?.heartbeatMs).toBe(100);
      await c.lock(holder());
      const tx = newTransactionId();
      await c.begin(tx);
      await c.commit(tx, snap('s1'));
      expect((await c.listSnapshots()).map((s) => s.snapshotId)).toEqual(['s1']);
      await c.unlock();
    } finally {
      await t.end();
    }
  });
});
