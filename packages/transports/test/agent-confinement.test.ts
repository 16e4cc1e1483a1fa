import { PassThrough, Readable } from 'node:stream';
import { existsSync } from 'node:fs';
import { mkdir, readdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { newTransactionId, type ByteStream, type ExpectedFile, type TransactionId } from '@dsg/contracts';
import {
  AgentServer,
  CLIENT_SILENCE_MS,
  FrameKind,
  LocalTransport,
  MAX_IN_FLIGHT,
  PROTOCOL_VERSION,
  encodeHeader,
  openRemote,
  readFrames,
  type AgentServerOptions,
} from '../src/index.js';
import { FakeRemoteFilesystem, testHasher } from './fake-fs.js';
import { hashOf, holder, tempDir } from './helpers.js';

/**
 * A backend that records whether a writeLink or deleteFile ever ran at once
 * with another of its critical sections: a whole writeLink / deleteFile, and
 * a writeFile from its call until it pulls the first byte (check → mkdir →
 * open in a real backend) and from the end of its data until it returns
 * (hash → rename). Two writeFile sections may overlap (neither plants a link
 * nor removes a directory); `maxUploadSections` counts how many did. It does
 * NOT serialise anything itself: only the agent can keep them apart.
 */
class Recording extends FakeRemoteFilesystem {
  active = 0;
  exclusive = 0;
  overlaps = 0;
  sections = 0;
  uploadSections = 0;
  maxUploadSections = 0;
  streaming = 0;
  maxStreaming = 0;
  private async section(upload = false): Promise<void> {
    this.sections++;
    if (upload) this.maxUploadSections = Math.max(this.maxUploadSections, ++this.uploadSections);
    else this.exclusive++;
    if (++this.active > 1 && (!upload || this.exclusive > 0)) this.overlaps++;
    await new Promise((r) => setTimeout(r, 1));
    await new Promise((r) => setImmediate(r));
    if (this.exclusive > 0 && this.active > 1) this.overlaps++; // a writer came in meanwhile
    this.active--;
    if (upload) this.uploadSections--;
    else this.exclusive--;
  }
  override async writeLink(tx: TransactionId, p: string, target: string): Promise<void> {
    await this.section();
    await super.writeLink(tx, p, target);
  }
  override async deleteFile(tx: TransactionId, p: string): Promise<void> {
    await this.section();
    await super.deleteFile(tx, p);
  }
  override async writeFile(
    tx: TransactionId,
    p: string,
    data: ByteStream,
    expected: ExpectedFile,
  ): Promise<{ size: number }> {
    await this.section(true);
    const chunks: Uint8Array[] = [];
    const it = data[Symbol.asyncIterator]();
    let first = true;
    for (;;) {
      const r = await it.next();
      if (first) {
        first = false;
        this.maxStreaming = Math.max(this.maxStreaming, ++this.streaming);
      }
      if (r.done) break;
      chunks.push(r.value);
    }
    this.streaming--;
    await this.section(true);
    return super.writeFile(tx, p, Readable.from(chunks), expected);
  }
}

/** A raw protocol client: frames straight into AgentServer.serve, nothing checked on this side. */
class Raw {
  readonly input = new PassThrough();
  readonly output = new PassThrough();
  readonly served: Promise<void>;
  /** the reader saw the end of the agent's output (closedWith is final then) */
  readonly finished: Promise<void>;
  /** the RESPONSE id 0 the agent sent before closing, if any */
  closedWith: { ok: false; error: { code: string; message: string } } | null = null;
  private id = 0;
  private readonly waiters = new Map<number, (m: Reply) => void>();
  /** set by stall(): the reader stops taking frames, as a stopped process would */
  private stalled: Promise<void> | null = null;

  constructor(server: AgentServer) {
    this.served = server.serve(this.input, this.output);
    this.finished = (async () => {
      for await (const f of readFrames(this.output)) {
        if (this.stalled) await this.stalled;
        if (f.kind !== FrameKind.RESPONSE) continue;
        const msg = JSON.parse(f.payload.toString('utf8')) as Reply;
        if (f.id === 0) this.closedWith = msg as typeof this.closedWith;
        else this.waiters.get(f.id)?.(msg);
      }
      for (const w of this.waiters.values()) w({ ok: false, error: { code: 'CLOSED', message: 'session closed' } });
    })();
    this.finished.catch(() => {});
  }

  send(op: string, fields: Record<string, unknown> = {}): { id: number; reply: Promise<Reply> } {
    const id = ++this.id;
    const reply = new Promise<Reply>((r) => this.waiters.set(id, r));
    const body = Buffer.from(JSON.stringify({ op, ...fields }));
    this.input.write(Buffer.concat([encodeHeader(FrameKind.REQUEST, id, body.length), body]));
    return { id, reply };
  }

  request(op: string, fields: Record<string, unknown> = {}): Promise<Reply> {
    return this.send(op, fields).reply;
  }

  async ok(op: string, fields: Record<string, unknown> = {}): Promise<unknown> {
    const r = await this.request(op, fields);
    if (!r.ok) throw new Error(`${op}: ${r.error.code} ${r.error.message}`);
    return r.result;
  }

  data(id: number, b: Uint8Array): void {
    this.input.write(Buffer.concat([encodeHeader(FrameKind.DATA, id, b.length), b]));
  }

  end(id: number): void {
    this.input.write(encodeHeader(FrameKind.END, id, 0));
  }

  upload(tx: string, path: string, b: Buffer): Promise<Reply> {
    const { id, reply } = this.send('writeFile', { tx, path, expected: { hash: hashOf(b), size: b.length } });
    this.data(id, b);
    this.end(id);
    return reply;
  }

  async hello(extra: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    return (await this.ok('hello', { protocol: PROTOCOL_VERSION, client: 'raw-test', ...extra })) as Record<
      string,
      unknown
    >;
  }

  ping(): void {
    this.input.write(encodeHeader(FrameKind.PING, 0, 0));
  }

  close(): void {
    this.input.end();
  }

  /** Read nothing more, ever (the agent's output backs up; `finished` never settles). */
  stall(): void {
    this.stalled = new Promise<void>(() => {});
  }
}

type Reply = { ok: true; result: unknown } | { ok: false; error: { code: string; message: string } };

let tmp: { dir: string; remove(): Promise<void> };
let sessions: Raw[];
beforeEach(async () => {
  tmp = await tempDir('dsg-conf-');
  sessions = [];
});
afterEach(async () => {
  for (const s of sessions) {
    s.close();
    await s.served;
  }
  await tmp.remove();
});

function server(
  o: Partial<AgentServerOptions> = {},
  make: (root: string) => FakeRemoteFilesystem = (r) => new FakeRemoteFilesystem(r),
): {
  server: AgentServer;
  repos: Map<string, FakeRemoteFilesystem>;
  log: string[];
} {
  const repos = new Map<string, FakeRemoteFilesystem>();
  const log: string[] = [];
  const s = new AgentServer({
    host: {
      open: (name) => {
        const fs = repos.get(name) ?? make(join(tmp.dir, name));
        repos.set(name, fs);
        return fs;
      },
      lockFile: (name) => join(tmp.dir, name, 'lock'),
      list: () => Promise.resolve(['other', 'proj']),
    },
    hasher: testHasher,
    log: (l) => log.push(l),
    agentVersion: 'test',
    ...o,
  });
  return { server: s, repos, log };
}

async function session(s: AgentServer): Promise<Raw> {
  const r = new Raw(s);
  sessions.push(r);
  await r.hello();
  return r;
}

async function lockedTx(r: Raw, repo = 'proj'): Promise<TransactionId> {
  await mkdir(join(tmp.dir, repo), { recursive: true });
  await r.ok('open', { repo });
  await r.ok('lock', { holder: holder() });
  const tx = newTransactionId();
  await r.ok('begin', { tx });
  return tx;
}

describe('every work-area mutation of a session is serialised', () => {
  it('concurrent writeLink, deleteFile and writeFile never overlap their check → change sections', async () => {
    const { server: s, repos } = server({}, (root) => new Recording(root));
    const r = await session(s);
    const tx = await lockedTx(r);
    const replies: Promise<Reply>[] = [];
    for (let i = 0; i < 12; i++) {
      replies.push(r.request('writeLink', { tx, path: `d${i}/a`, target: 'b' }));
      replies.push(r.upload(tx, `d${i}/a/f`, Buffer.from(`evil ${i}`)));
      replies.push(r.request('deleteFile', { tx, path: `d${i}/x` }));
    }
    await Promise.all(replies);
    const rec = repos.get('proj') as Recording;
    expect(rec.sections).toBeGreaterThan(12); // some are refused by the agent before the backend (a link at a parent)
    expect(rec.overlaps).toBe(0);
  });

  it('uploads share it: their path steps run together, a writeLink still waits for all of them', async () => {
    const { server: s, repos } = server({}, (root) => new Recording(root));
    const r = await session(s);
    const tx = await lockedTx(r);
    const replies: Promise<Reply>[] = [];
    for (let i = 0; i < 8; i++) replies.push(r.upload(tx, `u${i}/f`, Buffer.from(`data ${i}`)));
    replies.push(r.request('writeLink', { tx, path: 'l', target: 'u0' }));
    for (let i = 8; i < 16; i++) replies.push(r.upload(tx, `u${i}/f`, Buffer.from(`data ${i}`)));
    for (const reply of await Promise.all(replies)) expect(reply.ok).toBe(true);
    const rec = repos.get('proj') as Recording;
    expect(rec.maxUploadSections).toBeGreaterThan(1);
    expect(rec.overlaps).toBe(0);
  });

  it('an upload whose data stalls holds up nobody: the data flows outside the lock', async () => {
    const { server: s, repos } = server({}, (root) => new Recording(root));
    const r = await session(s);
    const tx = await lockedTx(r);
    const slow = Buffer.from('slow upload');
    const { id, reply } = r.send('writeFile', {
      tx,
      path: 'slow',
      expected: { hash: hashOf(slow), size: slow.length },
    });
    r.data(id, slow.subarray(0, 4)); // …and nothing more for now
    expect((await r.request('writeLink', { tx, path: 'l', target: 'x' })).ok).toBe(true);
    expect((await r.upload(tx, 'fast', Buffer.from('fast'))).ok).toBe(true);
    expect((await r.request('deleteFile', { tx, path: 'fast' })).ok).toBe(true);
    r.data(id, slow.subarray(4));
    r.end(id);
    expect(await reply).toEqual({ ok: true, result: { size: slow.length } });
    expect((repos.get('proj') as Recording).overlaps).toBe(0);
  });
});

describe('link targets: the one contracts gate, at the agent', () => {
  it.each([
    ['l1', '.'],
    ['sub/l2', 'l1/..'],
    ['l', '../x'],
    ['g', '.git/config'],
    ['sub/k', '../.ssh/authorized_keys'],
    ['abs', '/etc/passwd'],
  ])('%s -> %s is refused before the backend sees it', async (path, target) => {
    const { server: s } = server();
    const r = await session(s);
    const tx = await lockedTx(r);
    const reply = await r.request('writeLink', { tx, path, target });
    expect(reply.ok).toBe(false);
    expect(!reply.ok && reply.error.code).toBe('VALIDATION');
    expect(await readdir(join(tmp.dir, 'proj', `work-${tx}`))).toEqual([]);
  });

  it('a target passing through another link on disk is refused before the backend sees it', async () => {
    const { server: s } = server();
    const r = await session(s);
    const tx = await lockedTx(r);
    const work = join(tmp.dir, 'proj', `work-${tx}`);
    await mkdir(join(work, 'sub'));
    await symlink('../..', join(work, 'sub', 'old')); // as an older agent may have let in
    const reply = await r.request('writeLink', { tx, path: 'x', target: 'sub/old/etc/passwd' });
    expect(!reply.ok && reply.error.message).toMatch(/on disk.*"sub\/old" is a symlink/);
    expect((await readdir(work)).sort()).toEqual(['sub']);
  });

  it('./x and sub/l -> . are written', async () => {
    const { server: s } = server();
    const r = await session(s);
    const tx = await lockedTx(r);
    await r.ok('writeLink', { tx, path: 'l', target: './x' });
    await r.ok('writeLink', { tx, path: 'sub/l', target: '.' });
  });

  it('a write beyond a symlink in the work area is refused by the agent, even one pointing inside', async () => {
    const { server: s } = server();
    const r = await session(s);
    const tx = await lockedTx(r);
    const work = join(tmp.dir, 'proj', `work-${tx}`);
    await mkdir(join(work, 'real'));
    await symlink('real', join(work, 'inside'));
    const reply = await r.upload(tx, 'inside/f', Buffer.from('x'));
    expect(!reply.ok && reply.error.message).toMatch(/is a symlink/);
    expect(await readdir(join(work, 'real'))).toEqual([]);
  });
});

describe('copyFile: confined like an upload, counted apart from the wire', () => {
  it('a copy from or to beyond a symlink in the work area is refused by the agent, before the backend', async () => {
    const { server: s } = server();
    const r = await session(s);
    const tx = await lockedTx(r);
    const work = join(tmp.dir, 'proj', `work-${tx}`);
    const body = Buffer.from('secret');
    await mkdir(join(work, 'real'));
    expect((await r.upload(tx, 'real/f', body)).ok).toBe(true);
    await symlink('real', join(work, 'inside'));
    const expected = { hash: hashOf(body) };
    for (const [from, to] of [
      ['inside/f', 'copy'],
      ['real/f', 'inside/copy'],
    ]) {
      const reply = await r.request('copyFile', { tx, from, to, expected });
      expect(!reply.ok && reply.error.message).toMatch(/is a symlink/);
    }
    const up = await r.request('copyFile', { tx, from: '../x', to: 'y', expected });
    expect(!up.ok && up.error.code).toBe('VALIDATION');
    expect(await readdir(join(work, 'real'))).toEqual(['f']);
    expect(existsSync(join(work, 'copy'))).toBe(false);
  });

  it('stats counts the upload bytes received and the bytes copied on the server, apart', async () => {
    const { server: s, log } = server();
    const r = await session(s);
    const tx = await lockedTx(r);
    const body = Buffer.alloc(3000, 7);
    expect((await r.upload(tx, 'a', body)).ok).toBe(true);
    expect(await r.ok('copyFile', { tx, from: 'a', to: 'b/c', expected: { hash: hashOf(body), size: 3000 } })).toEqual({
      size: 3000,
    });
    const refused = await r.request('copyFile', {
      tx,
      from: 'a',
      to: 'd',
      expected: { hash: hashOf(Buffer.from('no')) },
    });
    expect(!refused.ok && refused.error.code).toBe('HASH_MISMATCH');
    const stats = (await r.ok('stats', {})) as { session: Record<string, number> };
    expect(stats.session).toEqual({
      bytesReceived: 3000,
      filesReceived: 1,
      bytesSent: 0,
      filesSent: 0,
      bytesCopied: 3000,
      filesCopied: 1,
      uploadRequests: 1,
      downloadRequests: 0,
    });
    r.close();
    await r.served;
    expect(log.join('\n')).toMatch(
      /session moved: received 3000 bytes \(1 files\).*copied 3000 bytes on the server \(1 files\)/,
    );
  });
});

describe('requests in flight per session are capped', () => {
  it(`${MAX_IN_FLIGHT} in flight are served; one more closes the session with a clear error, rolled back and unlocked`, async () => {
    const { server: s, log } = server();
    const r = await session(s);
    const tx = await lockedTx(r);
    // uploads that never send their data stay in flight
    const hanging = Array.from(
      { length: MAX_IN_FLIGHT - 1 },
      (_, i) => r.send('writeFile', { tx, path: `h${i}`, expected: { hash: '00' } }).reply,
    );
    expect((await r.request('stats')).ok).toBe(true); // the 32nd
    hanging.push(r.send('writeFile', { tx, path: 'last', expected: { hash: '00' } }).reply); // 32 again
    const over = await r.request('stats'); // the 33rd
    expect(over.ok).toBe(false);
    await r.finished;
    expect(r.closedWith?.error.message).toMatch(new RegExp(`more than ${MAX_IN_FLIGHT} requests in flight`));
    for (const h of await Promise.all(hanging)) expect(h.ok).toBe(false);
    expect(existsSync(join(tmp.dir, 'proj', 'lock'))).toBe(false);
    expect(existsSync(join(tmp.dir, 'proj', `work-${tx}`))).toBe(false);
    expect(log.join('\n')).toMatch(/requests in flight/);
  });

  it('the cap is an option', async () => {
    const { server: s } = server({ maxInFlight: 2 });
    const r = await session(s);
    const tx = await lockedTx(r);
    r.send('writeFile', { tx, path: 'a', expected: { hash: '00' } });
    r.send('writeFile', { tx, path: 'b', expected: { hash: '00' } });
    expect((await r.request('stats')).ok).toBe(false);
    await r.finished;
    expect(r.closedWith?.error.message).toMatch(/more than 2 requests in flight/);
  });
});

describe('--restrict-to-repository', () => {
  it('refuses any other name at open with a clear error, and lists only its repository', async () => {
    const { server: s, repos } = server({ restrictToRepository: 'proj' });
    const r = await session(s);
    expect(await r.ok('listRepositories')).toEqual(['proj']);
    const other = await r.request('open', { repo: 'other' });
    expect(other.ok).toBe(false);
    expect(!other.ok && other.error.code).toBe('RESTRICTED');
    expect(!other.ok && other.error.message).toMatch(/serves only the repository "proj".*"other" is refused/);
    expect(repos.has('other')).toBe(false);
    await r.ok('open', { repo: 'proj' });
  });

  it('lists nothing when its repository does not exist yet', async () => {
    const { server: s } = server({ restrictToRepository: 'newproj' });
    const r = await session(s);
    expect(await r.ok('listRepositories')).toEqual([]);
  });
});

describe('--read-only', () => {
  it('refuses every mutation, serves reads, and runs no recovery at open', async () => {
    const { server: s, repos } = server({ readOnly: true });
    await mkdir(join(tmp.dir, 'proj', 'current'), { recursive: true });
    const r = await session(s);
    await r.ok('open', { repo: 'proj' });
    expect(await r.ok('exists')).toBe(true);
    expect(await r.ok('listSnapshots')).toEqual([]);
    const tx = newTransactionId();
    const refused: [string, Record<string, unknown>][] = [
      ['lock', { holder: holder() }],
      ['unlock', {}],
      ['begin', { tx }],
      [
        'commit',
        {
          tx,
          snapshot: {
            snapshotId: 's1',
            message: 'm',
            manifestHash: 'h',
            user: 'u',
            createdAt: new Date().toISOString(),
          },
        },
      ],
      ['rollback', { tx }],
      ['writeLink', { tx, path: 'l', target: 'x' }],
      ['deleteFile', { tx, path: 'f' }],
      ['recover', {}],
      ['mountSnapshot', { snapshotId: 's1' }],
      ['unmountSnapshot', { at: '/tmp/x' }],
    ];
    for (const [op, fields] of refused) {
      const reply = await r.request(op, fields);
      expect(reply.ok, op).toBe(false);
      expect(!reply.ok && reply.error.code, op).toBe('READ_ONLY');
    }
    const up = await r.upload(tx, 'f', Buffer.from('x'));
    expect(!up.ok && up.error.code).toBe('READ_ONLY');
    expect(existsSync(join(tmp.dir, 'proj', 'lock'))).toBe(false);
    expect(await readdir(join(tmp.dir, 'proj'))).toEqual(['current']);
    expect(repos.get('proj')!.recovered).toBe(0);
  });
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('lock liveness: a silent client loses its session', () => {
  it('a client that offered PINGs and then sends nothing is ended: rolled back, unlocked', async () => {
    const { server: s, log } = server({ clientSilenceMs: 300 });
    const r = new Raw(s);
    sessions.push(r);
    const hello = await r.hello({ pings: true });
    expect(hello['clientPingMs']).toBe(75);
    const tx = await lockedTx(r);
    expect(existsSync(join(tmp.dir, 'proj', 'lock'))).toBe(true);
    await r.finished; // … and then silence
    expect(r.closedWith?.error.message).toMatch(/the client sent nothing for 0\.3 s/);
    expect(existsSync(join(tmp.dir, 'proj', 'lock'))).toBe(false);
    expect(existsSync(join(tmp.dir, 'proj', `work-${tx}`))).toBe(false);
    expect(log.join('\n')).toMatch(/rolled back abandoned transaction/);
  });

  it('a client that stops reading in the middle of a download is ended too: the download waiting on it does not keep the lock', async () => {
    const { server: s, log } = server({ clientSilenceMs: 300 });
    const r = new Raw(s);
    sessions.push(r);
    await r.hello({ pings: true });
    await mkdir(join(tmp.dir, 'proj', 'current'), { recursive: true });
    // far more than the output's buffer: the download waits for the client to read
    await writeFile(join(tmp.dir, 'proj', 'current', 'big.bin'), Buffer.alloc(8 << 20, 1));
    const tx = await lockedTx(r);
    r.stall();
    r.send('readFile', { path: 'big.bin' });
    await r.served; // the session ends although its output never drains
    expect(log.join('\n')).toMatch(/the client sent nothing for 0\.3 s/);
    expect(existsSync(join(tmp.dir, 'proj', 'lock'))).toBe(false);
    expect(existsSync(join(tmp.dir, 'proj', `work-${tx}`))).toBe(false);
  }, 60_000);

  it('PINGs keep an idle session alive', async () => {
    const { server: s } = server({ clientSilenceMs: 1000 });
    const r = new Raw(s);
    sessions.push(r);
    await r.hello({ pings: true });
    await lockedTx(r);
    for (let i = 0; i < 30; i++) {
      r.ping();
      await sleep(100);
    }
    expect((await r.request('stats')).ok).toBe(true);
    expect(r.closedWith).toBeNull();
  });

  it('AgentClient PINGs by itself when the agent asks; a client that did not offer PINGs is not watched (and may not send them)', async () => {
    const { server: s } = server({ clientSilenceMs: 600 });
    const t = new LocalTransport({ mode: 'in-process', server: s });
    try {
      const c = await openRemote(t, 'proj');
      expect(c.hello?.clientPingMs).toBe(150);
      await c.lock(holder());
      await sleep(2000);
      expect(await c.exists()).toBe(false);
      await c.unlock();
    } finally {
      await t.end();
    }
    const old = new Raw(s);
    sessions.push(old);
    const hello = await old.hello();
    expect(hello['clientPingMs']).toBeUndefined();
    await sleep(1500);
    expect((await old.request('stats')).ok).toBe(true);
    old.ping();
    await old.finished;
    expect(old.closedWith?.error.message).toMatch(/PING from a client that did not offer/);
  });

  it(`the default is ${CLIENT_SILENCE_MS / 1000} s, and 0 turns it off`, async () => {
    const r = new Raw(server().server);
    sessions.push(r);
    expect((await r.hello({ pings: true }))['clientPingMs']).toBe(CLIENT_SILENCE_MS / 4);
    const off = new Raw(server({ clientSilenceMs: 0 }).server);
    sessions.push(off);
    expect((await off.hello({ pings: true }))['clientPingMs']).toBeUndefined();
  });
});
