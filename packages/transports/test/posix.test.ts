// The protocol over the REAL posix backend (in-process server): what the
// fake in session.test.ts stands in for, checked against the real thing.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TransportError, ValidationError, newTransactionId } from '@dsg/contracts';
import { posixHost } from '@dsg/posix-ops';
import { AgentServer, LocalTransport, openRemote } from '../src/index.js';
import { testHasher } from './fake-fs.js';
import { bytes, collect, hashOf, holder, tempDir } from './helpers.js';

let tmp: { dir: string; remove(): Promise<void> };
let root: string;
let server: AgentServer;
let made: LocalTransport[];
const log: string[] = [];

beforeEach(async () => {
  tmp = await tempDir();
  root = join(tmp.dir, 'repos');
  await mkdir(root);
  made = [];
  server = new AgentServer({
    host: posixHost({ root, hasher: testHasher }),
    hasher: testHasher,
    log: (l) => log.push(l),
  });
});
afterEach(async () => {
  for (const t of made) await t.end();
  await tmp.remove();
});

function transport(): LocalTransport {
  const t = new LocalTransport({ mode: 'in-process', server });
  made.push(t);
  return t;
}
const snap = (id: string) => ({
  snapshotId: id,
  message: 'm',
  manifestHash: 'h',
  user: 'alice',
  createdAt: new Date().toISOString(),
});

describe('agent protocol over the real PosixRemoteFilesystem', () => {
  it('init and sync transactions, links, deletes, old snapshots', async () => {
    const c = await openRemote(transport(), 'proj');
    await c.lock(holder());
    const tx1 = newTransactionId();
    expect((await c.begin(tx1)).pattern).toBe('init');
    const big = randomBytes(5 << 20);
    await c.writeFile(tx1, 'a/big', bytes(big), { hash: hashOf(big), size: big.length });
    await c.writeFile(tx1, 'a/empty', bytes(Buffer.alloc(0)), { hash: hashOf(Buffer.alloc(0)), size: 0 });
    await c.writeLink(tx1, 'a/link', 'big');
    await c.commit(tx1, snap('s1'));
    const tx2 = newTransactionId();
    expect((await c.begin(tx2)).pattern).toBe('sync');
    await c.deleteFile(tx2, 'a/empty');
    await c.commit(tx2, snap('s2'));
    await c.unlock();
    expect(hashOf(await collect(await c.readFile('a/big')))).toBe(hashOf(big));
    expect(await c.readFile('a/empty')).toBeNull();
    expect((await collect(await c.readSnapshotFile('s1', 'a/empty'))).length).toBe(0);
    expect((await c.listSnapshots()).map((s) => s.snapshotId)).toEqual(['s1', 's2']);
    expect(await c.listRepositories()).toEqual(['proj']);
    expect(await c.exists()).toBe(true);
  });

  it('refuses a write through a symlink planted in the work area', async () => {
    const c = await openRemote(transport(), 'proj');
    await c.lock(holder());
    const tx = newTransactionId();
    const { workPath } = await c.begin(tx);
    const outside = join(tmp.dir, 'outside');
    await mkdir(outside);
    await symlink(outside, join(workPath, 'evil'));
    const d = Buffer.from('x');
    await expect(c.writeFile(tx, 'evil/x', bytes(d), { hash: hashOf(d) })).rejects.toBeInstanceOf(ValidationError);
    expect(await readdir(outside)).toEqual([]);
  });

  it('a client that goes away mid-upload leaves no transaction and no lock', async () => {
    const t = transport();
    const c = await openRemote(t, 'proj');
    await c.lock(holder());
    const tx = newTransactionId();
    const { workPath } = await c.begin(tx);
    let n = 0;
    async function* endless() {
      for (;;) {
        n++;
        yield randomBytes(128 * 1024);
        await new Promise((r) => setTimeout(r, 1));
      }
    }
    const up = c.writeFile(tx, 'f', endless(), { hash: '0000000000000000' }).catch((e: unknown) => e);
    while (n < 10) await new Promise((r) => setTimeout(r, 5));
    await t.end();
    expect(await up).toBeInstanceOf(TransportError);
    expect(existsSync(workPath)).toBe(false);
    expect(existsSync(join(root, 'proj', 'lock'))).toBe(false);
    expect(await readdir(join(root, 'proj', 'tx')).catch(() => [])).toEqual([]);
  });
});
