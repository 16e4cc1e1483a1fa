import { spawnSync } from 'node:child_process';
import { copyFile, readdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { TransportError, ZfsOperationError, newTransactionId, type HasherFactory } from '@dsg/contracts';
import { AgentClient, LocalTransport, openRemote } from '@dsg/transports';
import { createAgentHasher } from '../src/hasher.js';
import { BUNDLE, hashOf, hashStream, holder, snap, tempDir } from './helpers.js';

let hasher: HasherFactory;
beforeAll(async () => (hasher = await createAgentHasher()));
let tmp: { dir: string; remove(): Promise<void> };
beforeEach(async () => (tmp = await tempDir()));
afterEach(async () => tmp.remove());

describe('the bundled agent as a child process (LocalTransport child mode)', () => {
  it('runs from a directory with nothing but the bundle: two snapshots, reads old and new', async () => {
    // installing the agent = copying one file: prove it runs alone
    const alone = join(tmp.dir, 'alone');
    await import('node:fs/promises').then((f) => f.mkdir(alone));
    await copyFile(BUNDLE, join(alone, 'dsg-agent.mjs'));
    const root = join(tmp.dir, 'repos');
    const t = new LocalTransport({
      mode: 'child',
      command: [process.execPath, join(alone, 'dsg-agent.mjs'), 'serve', '--type', 'posix', '--root', root],
    });
    const c = await openRemote(t, 'proj');
    try {
      expect(c.hello!.agent).toMatch(/^\d+\.\d+\.\d+/);
      await c.lock(holder());
      for (const [i, text] of ['one', 'two'].entries()) {
        const tx = newTransactionId();
        await c.begin(tx);
        const d = Buffer.from(text);
        await c.writeFile(tx, 'data/f.txt', Readable.from([d]), { hash: hashOf(hasher, d), size: d.length });
        await expect(
          c.writeFile(tx, 'data/bad.txt', Readable.from([d]), { hash: 'ffffffffffffffff' }),
        ).rejects.toThrow();
        await c.commit(tx, snap(`s${i + 1}`));
      }
      await c.unlock();
      expect((await c.listSnapshots()).map((s) => s.snapshotId)).toEqual(['s1', 's2']);
      expect((await hashStream(hasher, await c.readFile('data/f.txt'))).hash).toBe(hashOf(hasher, Buffer.from('two')));
      expect((await hashStream(hasher, await c.readSnapshotFile('s1', 'data/f.txt'))).hash).toBe(
        hashOf(hasher, Buffer.from('one')),
      );
      expect(await c.readFile('data/bad.txt')).toBeNull();
      expect(await c.listRepositories()).toEqual(['proj']);
    } finally {
      await t.end();
      await t.end();
    }
    expect(await readdir(join(root, 'proj'))).not.toContain('lock');
  });

  it('the built @dsg/transports loads under plain node ESM (not only through vitest interop)', async () => {
    const config = join(tmp.dir, 'ssh_config');
    await import('node:fs/promises').then((f) => f.writeFile(config, 'Host x\n  HostName 127.0.0.1\n  Port 2222\n'));
    const code = `import { SshTransport } from '@dsg/transports';
      const t = new SshTransport({ host: 'x', sshConfigFile: ${JSON.stringify(config)}, agentCommand: ['true'] });
      console.log(t.target.hostName + ':' + t.target.port);`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], {
      cwd: fileURLToPath(new URL('..', import.meta.url)),
      encoding: 'utf8',
    });
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('127.0.0.1:2222');
  });

  it('--sudo routes every zfs command through `sudo -n` (seen in the error where sudo is absent or refuses)', async () => {
    const t = new LocalTransport({
      mode: 'child',
      command: [
        process.execPath,
        BUNDLE,
        'serve',
        '--type',
        'zfs',
        '--pool',
        'nosuchpool-dsg',
        '--mountpoint',
        tmp.dir,
        '--sudo',
      ],
    });
    await t.begin();
    try {
      const c = new AgentClient(t.channel());
      await c.handshake();
      const err = await c.listRepositories().then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(ZfsOperationError);
      expect((err as ZfsOperationError).zfsCommand.slice(0, 3)).toEqual(['sudo', '-n', 'zfs']);
    } finally {
      await t.end();
    }
  });

  it('a bad agent command surfaces as TransportError', async () => {
    const t = new LocalTransport({
      mode: 'child',
      command: [process.execPath, BUNDLE, 'serve', '--type', 'posix', '--root', 'relative'],
    });
    const err = await openRemote(t, 'proj').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransportError);
    expect((err as Error).message).toMatch(/agent closed the connection.*--root must be an absolute directory/);
  });
});
