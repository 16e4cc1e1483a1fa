/**
 * What the client does to its channel when the agent's output ends. Reading
 * it to the end must not destroy it: an ssh2 channel's destroy sends
 * CHANNEL_CLOSE at once, and sshd, closing before it reaped the agent, then
 * dropped the exit status that tells "dsg-agent not found" (127) from a
 * closed connection (seen on the busy CI box). Giving up on the agent still
 * destroys it, as before. The channel here is one Duplex both ways, like an
 * ssh2 channel (its reading side can end while its writing side is open):
 * the AgentClient's own stand-in for a transport.
 */
import { Duplex } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { AgentClient, FrameKind, encodeHeader } from '../src/index.js';

/** A channel: what is pushed is the agent's output; what the client writes is dropped. */
const channelStream = (): Duplex =>
  new Duplex({
    read() {},
    write(_chunk, _enc, done) {
      done();
    },
  });

describe('the client and its channel at the end of the agent’s output', () => {
  it('an output read to its end leaves the channel open for the exit status: the explanation is asked with it open', async () => {
    const input = channelStream();
    let openWhenAsked: boolean | null = null;
    const c = new AgentClient({
      input,
      output: input,
      explainClose: () => {
        openWhenAsked = !input.destroyed;
        return Promise.resolve({ message: 'dsg-agent not found on h for u', recoveryHint: 'Install it on h.' });
      },
    });
    input.push(null);
    await c.closed;
    expect(openWhenAsked).toBe(true);
    expect(input.destroyed).toBe(false);
    await expect(c.exists()).rejects.toThrow(/dsg-agent not found on h for u/);
  });

  it('a session the agent ended with an error, or a broken frame, destroys the channel as before', async () => {
    for (const bytes of [
      (() => {
        const body = Buffer.from(
          JSON.stringify({ ok: false, error: { name: 'DsgError', code: 'X', message: 'bye', recoveryHint: '' } }),
        );
        return Buffer.concat([encodeHeader(FrameKind.RESPONSE, 0, body.length), body]);
      })(),
      encodeHeader(99 as FrameKind, 0, 0), // an unknown kind: a protocol error
    ]) {
      const input = channelStream();
      const c = new AgentClient({ input, output: input });
      input.push(bytes);
      await c.closed;
      expect(input.destroyed).toBe(true);
    }
  });
});
