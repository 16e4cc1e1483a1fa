/**
 * An upload waiting for the SSH window when the agent ends the session.
 *
 * The agent (here a minimal one speaking the frame format) answers hello,
 * then stops reading, so the client's upload fills the channel window and
 * waits for 'drain'. The agent then ends the session with an error and exits.
 * ssh2's channel never emits 'drain' or 'close' for a channel the client
 * stopped reading, so an upload parked on 'drain' waited forever: a dsg
 * stopped mid-sync (laptop asleep) and resumed after the agent had given up
 * on it never exited. The upload must fail with the agent's reason.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { newTransactionId } from '@dsg/contracts';
import { requireSsh } from '@dsg/testenv';
import { AgentClient } from '../src/index.js';
import { tempDir, testSshTransport } from './helpers.js';

const ssh = requireSsh();
const HANG_GUARD = 120_000;

let tmp: { dir: string; remove(): Promise<void> };
beforeEach(async () => (tmp = await tempDir()));
afterEach(async () => tmp.remove());

// Hand-written on purpose: the agent under test is the client's peer, and
// a subprocess run over ssh cannot import the TypeScript sources.
const STALLING_AGENT = `
const frame = (kind, id, value) => {
  const body = Buffer.from(JSON.stringify(value));
  const h = Buffer.alloc(9);
  h.writeUInt32BE(5 + body.length, 0); h.writeUInt8(kind, 4); h.writeUInt32BE(id, 5);
  return Buffer.concat([h, body]);
};
let buf = Buffer.alloc(0);
let greeted = false;
process.stdin.on('data', (d) => {
  buf = Buffer.concat([buf, d]);
  if (greeted || buf.length < 9 || buf.length < 4 + buf.readUInt32BE(0)) return;
  greeted = true;
  process.stdin.pause(); // read nothing more: the client's uploads back up behind the SSH window
  process.stdout.write(frame(2, buf.readUInt32BE(5), { ok: true, result: { protocol: '1.3', agent: 'stalling', host: 'h', pid: process.pid, maxFramePayload: 1048576 } }));
  setTimeout(() => {
    const error = { name: 'TransportError', code: 'TRANSPORT', message: 'the agent gave up on this client', recoveryHint: '' };
    process.stdout.write(frame(2, 0, { ok: false, error }), () => process.exit(0));
  }, 1500);
});
`;

describe.skipIf(!ssh)('an upload stalled behind the SSH window (real sshd)', () => {
  it(
    'fails with the agent’s reason when the agent ends the session, instead of waiting for a drain that never comes',
    async () => {
      const script = join(tmp.dir, 'stalling-agent.cjs');
      await writeFile(script, STALLING_AGENT);
      const t = testSshTransport(ssh!, tmp.dir, { agentCommand: [process.execPath, script] });
      await t.begin();
      try {
        const client = new AgentClient(t.channel());
        await client.handshake();
        let sent = 0;
        // far more than any SSH window and socket buffers hold
        const source = function* (): Generator<Uint8Array> {
          const chunk = Buffer.alloc(1 << 20, 7);
          for (let i = 0; i < 512; i++) {
            sent += chunk.length;
            yield chunk;
          }
        };
        const upload = client.writeFile(newTransactionId(), 'big.bin', Readable.from(source()), {
          hash: '0'.repeat(16),
          size: 512 << 20,
        });
        await expect(upload).rejects.toThrow(/the agent gave up on this client/);
        // it stopped early: the agent read (almost) nothing of it
        expect(sent).toBeLessThan(512 << 20);
      } finally {
        await t.end();
      }
    },
    HANG_GUARD,
  );
});
