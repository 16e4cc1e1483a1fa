import { PassThrough } from 'node:stream';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { RepositoryHost, RepositorySummary } from '@dsg/contracts';
import { AgentClient, AgentServer, FrameKind, FrameWriter, LocalTransport, readFrames } from '../src/index.js';
import { parseJson } from '../src/frames.js';
import { FakeRemoteFilesystem, testHasher } from './fake-fs.js';
import { tempDir } from './helpers.js';

let tmp: { dir: string; remove(): Promise<void> };
beforeEach(async () => (tmp = await tempDir()));
afterEach(async () => tmp.remove());

/** An agent from before `details`: answers listRepositories with names whatever the request says, and records it. */
function oldAgent(names: string[]) {
  const toAgent = new PassThrough();
  const toClient = new PassThrough();
  const w = new FrameWriter(toClient);
  const requests: Record<string, unknown>[] = [];
  void (async () => {
    for await (const f of readFrames(toAgent)) {
      if (f.kind !== FrameKind.REQUEST) continue;
      const msg = parseJson(f.payload, 'request');
      requests.push(msg);
      const result =
        msg['op'] === 'hello' ? { protocol: '1.3', agent: 'old', host: 'h', pid: 1, maxFramePayload: 1 << 20 } : names;
      await w.sendJson(FrameKind.RESPONSE, f.id, { ok: true, result });
    }
  })().catch(() => {});
  return { channel: { input: toClient, output: toAgent }, requests, stop: () => toClient.end() };
}

/** A real AgentServer in-process over a host with (or without) summaries. */
async function withServer<T>(
  host: Partial<RepositoryHost>,
  opts: { restrictToRepository?: string },
  run: (c: AgentClient) => Promise<T>,
): Promise<T> {
  const server = new AgentServer({
    host: {
      open: (name) => new FakeRemoteFilesystem(join(tmp.dir, name)),
      lockFile: (name) => join(tmp.dir, name, 'lock'),
      list: () => Promise.resolve(['alpha', 'beta']),
      ...host,
    },
    hasher: testHasher,
    log: () => {},
    agentVersion: 'test',
    ...opts,
  });
  const t = new LocalTransport({ mode: 'in-process', server });
  try {
    await t.begin();
    const c = new AgentClient(t.channel());
    await c.handshake();
    return await run(c);
  } finally {
    await t.end();
  }
}

const summaries: RepositorySummary[] = [
  { name: 'alpha', head: 's3', replicaOf: 'primary.example:tank/dsg/alpha' },
  { name: 'beta', head: null, replicaOf: null },
];

describe('AgentClient.repositorySummaries (listRepositories with details)', () => {
  it('an agent that ignores `details` answers names: head and replicaOf come back unknown (absent), never guessed', async () => {
    const agent = oldAgent(['alpha', 'beta']);
    const c = new AgentClient(agent.channel);
    try {
      await c.handshake();
      expect(await c.repositorySummaries()).toEqual([{ name: 'alpha' }, { name: 'beta' }]);
      expect(agent.requests.at(-1)).toEqual({ op: 'listRepositories', details: true });
      // the plain call is unchanged on the wire and still gives names
      expect(await c.listRepositories()).toEqual(['alpha', 'beta']);
      expect(agent.requests.at(-1)).toEqual({ op: 'listRepositories' });
    } finally {
      agent.stop();
    }
  });

  it("a current agent answers its host's summaries; names alone stay what they were", async () => {
    await withServer({ summaries: () => Promise.resolve(summaries) }, {}, async (c) => {
      expect(await c.repositorySummaries()).toEqual(summaries);
      expect(await c.listRepositories()).toEqual(['alpha', 'beta']);
    });
  });

  it('--restrict-to-repository shows only its repository in the details too', async () => {
    await withServer({ summaries: () => Promise.resolve(summaries) }, { restrictToRepository: 'beta' }, async (c) => {
      expect(await c.repositorySummaries()).toEqual([{ name: 'beta', head: null, replicaOf: null }]);
    });
  });

  it('a host without summaries() gives names: unknown, like an older agent', async () => {
    await withServer({}, {}, async (c) => {
      expect(await c.repositorySummaries()).toEqual([{ name: 'alpha' }, { name: 'beta' }]);
    });
  });
});
