// detectRepository (protocol 1.3): what <root>/<name> is, asked before open,
// over the real posix backend's layouts; the ZFS probe stands in (the agent's
// real one runs in apps/cli/test/clone-by-url.test.ts against the real pool).
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DsgError, newTransactionId } from '@dsg/contracts';
import { posixHost, posixLayoutAt } from '@dsg/posix-ops';
import {
  AgentClient,
  AgentServer,
  LocalTransport,
  detectRepositoryAt,
  openRemote,
  type RepositoryProbes,
} from '../src/index.js';
import { testHasher } from './fake-fs.js';
import { bytes, hashOf, holder, snap, tempDir } from './helpers.js';

let tmp: { dir: string; remove(): Promise<void> };
let root: string;
let made: LocalTransport[];
let zfsAsked: string[];

beforeEach(async () => {
  tmp = await tempDir();
  root = join(tmp.dir, 'repos');
  await mkdir(root);
  made = [];
  zfsAsked = [];
});
afterEach(async () => {
  for (const t of made) await t.end();
  await tmp.remove();
});

/** ZFS as a stand-in: `<root>/tank-repo` is the mountpoint of tank/dsg/tank-repo, `<root>/odd` of tank/other. */
const probes = (): RepositoryProbes => ({
  zfsDatasetAt: (dir) => {
    zfsAsked.push(dir);
    return Promise.resolve(
      dir === join(root, 'tank-repo') ? 'tank/dsg/tank-repo' : dir === join(root, 'odd') ? 'tank/other' : null,
    );
  },
  posixLayoutAt,
});

function server(o: { restrictToRepository?: string; readOnly?: boolean; detect?: false } = {}): AgentServer {
  const { detect, ...rest } = o;
  return new AgentServer({
    host: posixHost({ root, hasher: testHasher }),
    hasher: testHasher,
    ...(detect === false ? {} : { detect: { root, probes: probes() } }),
    ...rest,
  });
}

async function client(s = server()): Promise<AgentClient> {
  const t = new LocalTransport({ mode: 'in-process', server: s });
  made.push(t);
  await t.begin();
  const c = new AgentClient(t.channel());
  await c.handshake();
  return c;
}

async function posixRepository(name: string): Promise<void> {
  const t = new LocalTransport({ mode: 'in-process', server: server() });
  made.push(t);
  const c = await openRemote(t, name);
  await c.lock(holder());
  const tx = newTransactionId();
  await c.begin(tx);
  const d = Buffer.from('x');
  await c.writeFile(tx, 'input/a', bytes(d), { hash: hashOf(d), size: 1 });
  await c.commit(tx, snap('s1'));
  await c.unlock();
}

describe('detectRepository', () => {
  it('a posix repository is posix, without asking ZFS', async () => {
    await posixRepository('proj');
    const c = await client();
    expect(await c.detectRepository('proj')).toEqual({ type: 'posix', layout: 'snapshots' });
    expect(zfsAsked).toEqual([]);
  });

  it("a ZFS dataset's mountpoint is zfs with its parent as pool; a dataset of another name is neither", async () => {
    const c = await client();
    expect(await c.detectRepository('tank-repo')).toEqual({
      type: 'zfs',
      dataset: 'tank/dsg/tank-repo',
      pool: 'tank/dsg',
    });
    const odd = await c.detectRepository('odd');
    expect(odd).toMatchObject({ type: null });
    expect(odd && odd.type === null ? odd.reason : '').toContain('tank/other, which is not named <pool>/odd');
  });

  it('neither: type null with the reason', async () => {
    const c = await client();
    expect(await c.detectRepository('nothing')).toEqual({
      type: null,
      reason: `${join(root, 'nothing')} is neither a ZFS dataset's mountpoint nor a dsg repository`,
    });
  });

  it('bad names are refused before any probe; only under the agent root', async () => {
    const c = await client();
    for (const bad of ['../etc', 'a/b', '', '.', '..', '-x', 'x'.repeat(101)]) {
      const e = await c.detectRepository(bad).then(
        () => null,
        (x: unknown) => x,
      );
      expect(e, JSON.stringify(bad)).toBeInstanceOf(DsgError);
    }
    expect(zfsAsked).toEqual([]);
    // the directory asked is always <root>/<name>
    await c.detectRepository('abc');
    expect(zfsAsked).toEqual([join(root, 'abc')]);
  });

  it('--restrict-to-repository refuses other names; --read-only allows it (it reads only)', async () => {
    const r = await client(server({ restrictToRepository: 'proj' }));
    const e = await r.detectRepository('tank-repo').then(
      () => null,
      (x: unknown) => x as DsgError,
    );
    expect(e?.code).toBe('RESTRICTED');
    const ro = await client(server({ readOnly: true }));
    expect(await ro.detectRepository('tank-repo')).toMatchObject({ type: 'zfs' });
  });

  it('an agent without probes answers type null; the composition is exported for other hosts', async () => {
    const c = await client(server({ detect: false }));
    expect(await c.detectRepository('proj')).toEqual({ type: null, reason: 'this agent cannot detect repositories' });
    expect(await detectRepositoryAt(root, 'tank-repo', probes())).toMatchObject({ type: 'zfs', pool: 'tank/dsg' });
  });

  it('an agent older than 1.3 is not asked', async () => {
    const c = await client();
    c.hello = { ...c.hello!, protocol: '1.2' };
    expect(await c.detectRepository('proj')).toBeUndefined();
  });
});
