/**
 * The exit status of a command that fails at once arrives in the same read as
 * the reply to the exec request: ssh2 emits the channel's 'exit' while it
 * parses that read, before the exec callback's promise resumes anyone. An
 * in-process ssh2 server stands in for sshd here (the unit under test is the
 * transport above it) because it makes that order certain: it answers the
 * exec, the exit status and the close in one tick, with nothing on stderr
 * that could tell "not found" by its words.
 */
import { writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import ssh2 from 'ssh2';
import { TransportError } from '@dsg/contracts';
import { SshTransport, openRemote } from '../src/index.js';
import { ed25519KeyPair, tempDir } from './helpers.js';

const { Server } = ssh2;

describe('exit status of an agent command that fails at once (in-process ssh2 server)', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  let server: InstanceType<typeof Server>;
  let port = 0;
  let exitCode = 127;

  beforeEach(async () => {
    tmp = await tempDir('dsg-exit-');
    const hostKey = ed25519KeyPair();
    server = new Server({ hostKeys: [hostKey.private] }, (client) => {
      client.on('authentication', (ctx) => (ctx.method === 'publickey' ? ctx.accept() : ctx.reject(['publickey'])));
      client.on('ready', () => {
        client.on('session', (acceptSession) => {
          acceptSession().on('exec', (accept) => {
            const ch = accept();
            ch.exit(exitCode);
            ch.end();
          });
        });
      });
      client.on('error', () => {});
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
    const userKey = ed25519KeyPair();
    await writeFile(join(tmp.dir, 'id'), userKey.private, { mode: 0o600 });
    await writeFile(join(tmp.dir, 'known_hosts'), `[127.0.0.1]:${port} ${hostKey.public}\n`);
  });

  afterEach(async () => {
    await new Promise<void>((r) => server.close(() => r()));
    await tmp.remove();
  });

  const transport = (): SshTransport =>
    new SshTransport({
      host: '127.0.0.1',
      port,
      user: 'alice',
      identityFile: join(tmp.dir, 'id'),
      knownHostsFile: join(tmp.dir, 'known_hosts'),
      sshConfigFile: join(tmp.dir, 'none'),
      agentSocket: null,
      agentCommand: ['dsg-agent', 'serve'],
    });

  it.each([
    [127, /^dsg-agent not found on 127\.0\.0\.1 for alice: the command "dsg-agent" does not exist/],
    [126, /^dsg-agent cannot be run on 127\.0\.0\.1 by alice: "dsg-agent" is not executable/],
  ])('exit %i is read, not lost to the exec reply', async (code, message) => {
    exitCode = code;
    for (let i = 0; i < 5; i++) {
      const t = transport();
      const err = (await openRemote(t, 'p').catch((e: unknown) => e)) as TransportError;
      expect(err).toBeInstanceOf(TransportError);
      expect(err.message).toMatch(message);
    }
  });
});
