// fileDigest (protocol 1.2) through the real sshd and the bundled agent, on
// the posix backend and, where the test pool is up, on ZFS: the digest of a
// head file without its bytes, hostile paths refused, and the agent's session
// counters show that nothing was downloaded.
import { createHash } from 'node:crypto';
import { chmod, mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DsgError, LAST_SYNC, newTransactionId, type HasherFactory } from '@dsg/contracts';
import { freshParent, requireSsh, requireZfs, type TestParent } from '@dsg/testenv';
import { SshTransport, openRemote, type AgentClient } from '@dsg/transports';
import { createAgentHasher } from '../src/hasher.js';
import { hashOf, holder, snap, tempDir, BUNDLE } from './helpers.js';

const ssh = requireSsh();
const zfs = requireZfs();

let hasher: HasherFactory;
beforeAll(async () => (hasher = await createAgentHasher()));

let tmp: { dir: string; remove(): Promise<void> };
let open: SshTransport[];
let parent: TestParent | null;
beforeEach(async () => {
  tmp = await tempDir();
  open = [];
  parent = null;
});
afterEach(async () => {
  for (const t of open) await t.end();
  parent?.destroy();
  await tmp.remove();
});

function connect(target: string[]): Promise<AgentClient> {
  const t = new SshTransport({
    host: ssh!.host,
    port: ssh!.port,
    user: ssh!.user,
    identityFile: ssh!.key,
    knownHostsFile: ssh!.knownHosts,
    sshConfigFile: join(tmp.dir, 'no-ssh-config'),
    agentSocket: null,
    agentCommand: ['node', BUNDLE, 'serve', ...target],
  });
  open.push(t);
  return openRemote(t, 'proj');
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

async function commitFiles(c: AgentClient, files: Record<string, Buffer>): Promise<void> {
  await c.lock(holder());
  const tx = newTransactionId();
  await c.begin(tx);
  for (const [p, d] of Object.entries(files))
    await c.writeFile(tx, p, Readable.from([d]), { hash: hashOf(hasher, d), size: d.length });
  await c.commit(tx, snap('s1'));
  await c.unlock();
}

async function digestsOverSsh(target: string[]): Promise<void> {
  const manifest = Buffer.from(JSON.stringify({ entries: {}, metadata: { snapshot_id: 's1' } }, null, 2));
  const data = Buffer.alloc(600_000, 7);
  await commitFiles(await connect(target), { [LAST_SYNC]: manifest, 'input/data.bin': data });
  const c = await connect(target);
  expect(c.hello?.protocol).toBe('1.3');
  expect(await c.fileDigest(LAST_SYNC)).toEqual({ sha256: sha256(manifest), size: manifest.length });
  expect(await c.fileDigest('input/data.bin')).toEqual({ sha256: sha256(data), size: data.length });
  expect(await c.fileDigest('input/none')).toBeNull();
  for (const p of ['../proj/x', '/etc/passwd', 'input/../../x', 'a\0b']) {
    const e = await c.fileDigest(p).catch((x: unknown) => x);
    expect(e, p).toBeInstanceOf(DsgError);
    expect((e as DsgError).code, p).toBe('VALIDATION');
  }
  const s = (await c.stats()).session!;
  expect(s.bytesSent).toBe(0);
  expect(s.downloadRequests).toBe(0);
}

describe.skipIf(!ssh)('fileDigest over real SSH', () => {
  it('posix: digests of head files, nothing sent; hostile paths refused; a linked parent never followed', async () => {
    const root = join(tmp.dir, 'repos');
    await digestsOverSsh(['--type', 'posix', '--root', root]);
    // a link to a directory outside, planted beside the snapshots by someone on the server
    const outside = join(tmp.dir, 'outside');
    await mkdir(outside);
    await writeFile(join(outside, 'secret'), 'not for clients');
    const head = join(root, 'proj', 'snapshots', 's1'); // sealed read-only: opened again for the plant
    await chmod(head, 0o755);
    await symlink(outside, join(head, 'evil'));
    const c = await connect(['--type', 'posix', '--root', root]);
    const r = await c.fileDigest('evil/secret').catch((x: unknown) => x);
    expect(r === null || r instanceof DsgError).toBe(true);
    expect(JSON.stringify(r ?? null)).not.toContain(sha256(Buffer.from('not for clients')));
  });

  it.skipIf(!zfs)('zfs: digests of head files, nothing sent; hostile paths refused', async () => {
    parent = freshParent(zfs!, 'agent-digest');
    await digestsOverSsh(['--type', 'zfs', '--pool', parent.dataset, '--mountpoint', parent.mountpoint]);
  });
});
