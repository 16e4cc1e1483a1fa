import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DsgError, TransportError, newTransactionId, type HasherFactory } from '@dsg/contracts';
import { AgentClient, LocalTransport, openRemote } from '@dsg/transports';
import { createAgentHasher } from '../src/hasher.js';
import { BUNDLE, hashOf, hashStream, holder, snap, tempDir } from './helpers.js';

let hasher: HasherFactory;
beforeAll(async () => (hasher = await createAgentHasher()));
let tmp: { dir: string; remove(): Promise<void> };
beforeEach(async () => (tmp = await tempDir()));
afterEach(async () => tmp.remove());

const agent = (root: string, ...extra: string[]): LocalTransport =>
  new LocalTransport({
    mode: 'child',
    command: [process.execPath, BUNDLE, 'serve', '--type', 'posix', '--root', root, ...extra],
  });

async function seed(root: string, name: string, text: string): Promise<void> {
  const t = agent(root);
  const c = await openRemote(t, name);
  try {
    await c.lock(holder());
    const tx = newTransactionId();
    await c.begin(tx);
    const d = Buffer.from(text);
    await c.writeFile(tx, 'data/f.txt', Readable.from([d]), { hash: hashOf(hasher, d), size: d.length });
    await c.commit(tx, snap('s1'));
    await c.unlock();
  } finally {
    await t.end();
  }
}

async function refusal(p: Promise<unknown>): Promise<DsgError> {
  const e = await p.then(
    () => null,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(DsgError);
  return e as DsgError;
}

describe('dsg-agent serve --restrict-to-repository / --read-only (the bundle as a child process)', () => {
  it('--restrict-to-repository proj: other names refused at open with a clear error, hidden from listings', async () => {
    const root = join(tmp.dir, 'repos');
    await seed(root, 'proj', 'p');
    await seed(root, 'secret', 's');
    const t = agent(root, '--restrict-to-repository', 'proj');
    await t.begin();
    try {
      const c = new AgentClient(t.channel());
      await c.handshake();
      expect(await c.listRepositories()).toEqual(['proj']);
      const e = await refusal(c.open('secret'));
      expect(e.code).toBe('RESTRICTED');
      expect(e.message).toMatch(/serves only the repository "proj".*"secret" is refused/);
      await c.open('proj');
      expect((await hashStream(hasher, await c.readFile('data/f.txt'))).hash).toBe(hashOf(hasher, Buffer.from('p')));
    } finally {
      await t.end();
    }
  });

  it('--read-only: reads work, every change is refused, nothing is written', async () => {
    const root = join(tmp.dir, 'repos');
    await seed(root, 'proj', 'p');
    const t = agent(root, '--read-only');
    const c = await openRemote(t, 'proj');
    try {
      expect((await c.listSnapshots()).map((s) => s.snapshotId)).toEqual(['s1']);
      expect((await hashStream(hasher, await c.readSnapshotFile('s1', 'data/f.txt'))).hash).toBe(
        hashOf(hasher, Buffer.from('p')),
      );
      expect((await refusal(c.lock(holder()))).code).toBe('READ_ONLY');
      const tx = newTransactionId();
      expect((await refusal(c.begin(tx))).code).toBe('READ_ONLY');
      const d = Buffer.from('x');
      expect((await refusal(c.writeFile(tx, 'data/x', Readable.from([d]), { hash: hashOf(hasher, d) }))).code).toBe(
        'READ_ONLY',
      );
      expect((await refusal(c.writeLink(tx, 'data/l', 'f.txt'))).code).toBe('READ_ONLY');
      expect((await refusal(c.deleteFile(tx, 'data/f.txt'))).code).toBe('READ_ONLY');
      expect((await refusal(c.commit(tx, snap('s2')))).code).toBe('READ_ONLY');
      expect((await refusal(c.recover())).code).toBe('READ_ONLY');
    } finally {
      await t.end();
    }
    const { readdir } = await import('node:fs/promises');
    expect((await readdir(join(root, 'proj'))).sort()).toEqual(['current', 'snapshots']);
  });

  it('a bad --restrict-to-repository name is a configuration error before any session', async () => {
    await mkdir(join(tmp.dir, 'repos'));
    const err = await openRemote(agent(join(tmp.dir, 'repos'), '--restrict-to-repository', '../etc'), 'proj').catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(TransportError);
    expect((err as Error).message).toMatch(/--restrict-to-repository "\.\.\/etc" is not a repository name/);
  });
});
