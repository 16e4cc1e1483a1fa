// fileDigest (protocol 1.2): a head file's SHA-256 and size, computed by the
// agent over the REAL posix backend, through the same path gate as readFile.
import { createHash, randomBytes } from 'node:crypto';
import { chmod, mkdir, symlink, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DsgError, LAST_SYNC, newTransactionId, type FileDigest } from '@dsg/contracts';
import { posixHost } from '@dsg/posix-ops';
import { AgentClient, AgentServer, LocalTransport, PROTOCOL_VERSION, openRemote } from '../src/index.js';
import { DIGEST_MAX_BYTES } from '../src/server.js';
import { testHasher } from './fake-fs.js';
import { bytes, hashOf, holder, snap, tempDir } from './helpers.js';

let tmp: { dir: string; remove(): Promise<void> };
let root: string;
let made: LocalTransport[];
let log: string[];

beforeEach(async () => {
  tmp = await tempDir();
  root = join(tmp.dir, 'repos');
  await mkdir(root);
  made = [];
  log = [];
});
afterEach(async () => {
  for (const t of made) await t.end();
  await chmod(join(root, 'proj', 'snapshots', 's1'), 0o755).catch(() => {});
  await tmp.remove();
});

function server(o: { readOnly?: boolean } = {}): AgentServer {
  return new AgentServer({
    host: posixHost({ root, hasher: testHasher }),
    hasher: testHasher,
    log: (l) => log.push(l),
    ...o,
  });
}

async function client(s = server()): Promise<AgentClient> {
  const t = new LocalTransport({ mode: 'in-process', server: s });
  made.push(t);
  return openRemote(t, 'proj');
}

const digest = (b: Buffer): FileDigest => ({ sha256: createHash('sha256').update(b).digest('hex'), size: b.length });

/** A repository whose head (s1) holds these files. */
async function repository(files: Record<string, Buffer>): Promise<void> {
  const c = await client();
  await c.lock(holder());
  const tx = newTransactionId();
  await c.begin(tx);
  for (const [p, d] of Object.entries(files)) await c.writeFile(tx, p, bytes(d), { hash: hashOf(d), size: d.length });
  await c.commit(tx, snap('s1'));
  await c.unlock();
}

describe('fileDigest: a head file without its bytes (protocol 1.2)', () => {
  it('answers SHA-256 and size of head files (null: absent) and sends no content', async () => {
    const manifest = Buffer.from(JSON.stringify({ entries: {}, metadata: { snapshot_id: 's1' } }, null, 2));
    const big = randomBytes(3 << 20); // several chunks of the backend's read stream
    await repository({ [LAST_SYNC]: manifest, 'a/big': big, 'a/empty': Buffer.alloc(0) });
    const c = await client();
    expect(PROTOCOL_VERSION).toBe('1.3');
    expect(c.hello?.protocol).toBe('1.3');
    expect(await c.fileDigest(LAST_SYNC)).toEqual(digest(manifest));
    expect(await c.fileDigest('a/big')).toEqual(digest(big));
    expect(await c.fileDigest('a/empty')).toEqual(digest(Buffer.alloc(0)));
    expect(await c.fileDigest('a/none')).toBeNull();
    // a directory is no file: refused as readFile refuses it
    await expect(c.fileDigest('a')).rejects.toThrow(/is a directory, not a file/);
    await expect(c.readFile('a')).rejects.toThrow(/is a directory, not a file/);
    const session = (await c.stats()).session!;
    expect(session.bytesSent).toBe(0);
    expect(session.downloadRequests).toBe(0);
  });

  it('a repository without a snapshot: null', async () => {
    const c = await client();
    expect(await c.exists()).toBe(false);
    expect(await c.fileDigest(LAST_SYNC)).toBeNull();
  });

  it('is a read: a read-only agent answers it, but not before open', async () => {
    const d = Buffer.from('x');
    await repository({ f: d });
    const ro = await client(server({ readOnly: true }));
    expect(await ro.fileDigest('f')).toEqual(digest(d));
    const t = new LocalTransport({ mode: 'in-process', server: server() });
    made.push(t);
    await t.begin();
    const bare = new AgentClient(t.channel());
    await bare.handshake();
    await expect(bare.fileDigest('f')).rejects.toThrow(/no repository is open/);
  });

  it('refuses hostile paths exactly as readFile does, and never digests a file outside the repository', async () => {
    const secret = Buffer.from('the server admin keeps this outside every repository');
    const outside = join(tmp.dir, 'outside');
    await mkdir(outside);
    await writeFile(join(outside, 'secret'), secret);
    await repository({ 'a/f': Buffer.from('inside') });
    // links planted in the head by someone with access to the server (a parent, and the file itself)
    const head = join(root, 'proj', 'snapshots', 's1');
    await chmod(head, 0o755);
    await symlink(outside, join(head, 'evil'));
    await symlink(join(outside, 'secret'), join(head, 'leaf'));
    const c = await client();
    const leaked = digest(secret).sha256;
    for (const p of [
      '../outside/secret',
      '/etc/passwd',
      'a/../../outside/secret',
      'a/./f',
      '',
      'a\0b',
      'a\\..\\x',
      'evil/secret',
      'leaf',
    ]) {
      const viaDigest = await c.fileDigest(p).then(
        (d) => ({ d }),
        (e: unknown) => ({ e }),
      );
      const viaRead = await c.readFile(p).then(
        (s) => ({ d: s === null ? null : 'stream' }),
        (e: unknown) => ({ e }),
      );
      if ('e' in viaDigest) {
        // refused: with the code readFile is refused with
        expect(viaDigest.e, p).toBeInstanceOf(DsgError);
        expect('e' in viaRead, p).toBe(true);
        expect((viaDigest.e as DsgError).code, p).toBe((viaRead as { e: DsgError }).e.code);
      } else {
        expect(viaDigest.d, p).toBeNull();
        expect(viaRead, p).toEqual({ d: null });
      }
      expect(JSON.stringify(viaDigest)).not.toContain(leaked);
    }
    // the session goes on
    expect(await c.fileDigest('a/f')).toEqual(digest(Buffer.from('inside')));
  });

  it('hashes manifest-sized files only: a bigger one is refused (nothing throttles this read, unlike a download)', async () => {
    await repository({ 'data/big': Buffer.from('x') });
    const head = join(root, 'proj', 'snapshots', 's1');
    await chmod(head, 0o755);
    await chmod(join(head, 'data'), 0o755).catch(() => {});
    await chmod(join(head, 'data', 'big'), 0o644).catch(() => {});
    await truncate(join(head, 'data', 'big'), DIGEST_MAX_BYTES + 1); // sparse: no disk used
    const c = await client();
    await expect(c.fileDigest('data/big')).rejects.toThrow(/at most 268435456 bytes/);
    await truncate(join(head, 'data', 'big'), DIGEST_MAX_BYTES);
    expect((await c.fileDigest('data/big'))?.size).toBe(DIGEST_MAX_BYTES);
  });

  it('an agent whose hello says 1.1 is not asked: undefined, and the caller reads the file instead', async () => {
    const d = Buffer.from('content');
    await repository({ f: d });
    const c = await client();
    c.hello = { ...c.hello!, protocol: '1.1' };
    let sent = 0;
    const request = c.request.bind(c);
    c.request = ((...a: Parameters<typeof request>) => {
      sent++;
      return request(...a);
    }) as typeof c.request;
    expect(await c.fileDigest('f')).toBeUndefined();
    expect(sent).toBe(0);
  });
});
