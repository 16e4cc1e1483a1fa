import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { newTransactionId, type HasherFactory } from '@dsg/contracts';
import { freshParent, listAll, requireSsh, requireZfs, type TestParent } from '@dsg/testenv';
import { SshTransport, openRemote } from '@dsg/transports';
import { createAgentHasher } from '../src/hasher.js';
import { BUNDLE, hashOf, hashStream, holder, snap } from './helpers.js';

const ssh = requireSsh();
const zfs = requireZfs();

let hasher: HasherFactory;
beforeAll(async () => (hasher = await createAgentHasher()));
let parent: TestParent;
let t: SshTransport;
beforeEach(() => {
  parent = freshParent(zfs!, 'agent');
  t = new SshTransport({
    host: ssh!.host,
    port: ssh!.port,
    user: ssh!.user,
    identityFile: ssh!.key,
    knownHostsFile: ssh!.knownHosts,
    sshConfigFile: '/nonexistent',
    agentSocket: null,
    agentCommand: [
      'node',
      BUNDLE,
      'serve',
      '--type',
      'zfs',
      '--pool',
      parent.dataset,
      '--mountpoint',
      parent.mountpoint,
    ],
  });
});
afterEach(async () => {
  await t.end();
  parent.destroy();
});

describe.skipIf(!ssh || !zfs)('dsg-agent over real SSH (zfs backend, real pool)', () => {
  it('init then sync over the wire; old snapshot readable; lock beside the datasets; no temp datasets left', async () => {
    const c = await openRemote(t, 'proj');
    await c.lock(holder());
    expect(existsSync(join(parent.mountpoint, '.proj.dsg-lock'))).toBe(true);
    for (const [i, text] of ['first', 'second'].entries()) {
      const tx = newTransactionId();
      const b = await c.begin(tx);
      expect(b.pattern).toBe(i === 0 ? 'init' : 'sync');
      const d = Buffer.from(text);
      await c.writeFile(tx, 'data/f.txt', Readable.from([d]), { hash: hashOf(hasher, d), size: d.length });
      await c.commit(tx, snap(`s${i + 1}`));
    }
    await c.unlock();
    expect(existsSync(join(parent.mountpoint, '.proj.dsg-lock'))).toBe(false);
    expect((await hashStream(hasher, await c.readFile('data/f.txt'))).hash).toBe(hashOf(hasher, Buffer.from('second')));
    expect((await hashStream(hasher, await c.readSnapshotFile('s1', 'data/f.txt'))).hash).toBe(
      hashOf(hasher, Buffer.from('first')),
    );
    expect((await c.listSnapshots()).map((s) => s.snapshotId)).toEqual(['s1', 's2']);
    expect(await c.listRepositories()).toEqual(['proj']);
    expect(listAll(parent.dataset).filter((n) => /-(init|sync|old)-|sync-temp/.test(n))).toEqual([]);
  });
});
