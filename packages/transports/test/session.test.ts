import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, symlink, utimes, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LockedError, TransportError, ValidationError, newTransactionId, type TransactionId } from '@dsg/contracts';
import { AgentClient, FrameKind, LocalTransport, encodeHeader, openRemote } from '../src/index.js';
import { bytes, collect, fakeServer, hashOf, holder, snap, tempDir } from './helpers.js';

let tmp: { dir: string; remove(): Promise<void> };
let log: string[];
let made: LocalTransport[];

beforeEach(async () => {
  tmp = await tempDir();
  log = [];
  made = [];
});
afterEach(async () => {
  for (const t of made) await t.end();
  await tmp.remove();
});

function transport(server = fakeServer(tmp.dir, log).server): LocalTransport {
  const t = new LocalTransport({ mode: 'in-process', server });
  made.push(t);
  return t;
}

async function until(cond: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('agent session over the in-process transport', () => {
  it('runs a transaction: uploads, link, delete, commit, reads back', async () => {
    const c = await openRemote(transport(), 'proj');
    expect(c.hello?.protocol).toBe('1.3');
    expect(await c.exists()).toBe(false);
    await c.lock(holder());
    const tx = newTransactionId();
    const b = await c.begin(tx);
    expect(b.pattern).toBe('init');
    const files = new Map<string, Buffer>([
      ['empty', Buffer.alloc(0)],
      ['one', Buffer.from('x')],
      ['dir/big.bin', randomBytes(3 * 1024 * 1024 + 17)],
      ['gone', Buffer.from('bye')],
    ]);
    await Promise.all([...files].map(([p, d]) => c.writeFile(tx, p, bytes(d), { hash: hashOf(d), size: d.length })));
    await c.writeLink(tx, 'dir/link', 'big.bin');
    await c.deleteFile(tx, 'gone');
    await c.commit(tx, snap('s1'));
    await c.unlock();
    expect(await c.exists()).toBe(true);
    for (const [p, d] of files) {
      if (p === 'gone') expect(await c.readFile(p)).toBeNull();
      else expect(hashOf(await collect(await c.readFile(p)))).toBe(hashOf(d));
    }
    expect((await c.listSnapshots()).map((s) => s.snapshotId)).toEqual(['s1']);
    expect((await collect(await c.readSnapshotFile('s1', 'one'))).toString()).toBe('x');
    expect(await c.readSnapshotFile('s1', 'nope')).toBeNull();
  });

  it('refuses a wrong hash and leaves nothing in the work area', async () => {
    const c = await openRemote(transport(), 'proj');
    await c.lock(holder());
    const tx = newTransactionId();
    const { workPath } = await c.begin(tx);
    await expect(c.writeFile(tx, 'f', bytes(Buffer.from('abc')), { hash: '0000000000000000' })).rejects.toBeInstanceOf(
      ValidationError,
    );
    expect(await readdir(workPath)).toEqual([]);
    // the session is still usable
    await c.rollback(tx);
    expect(existsSync(workPath)).toBe(false);
  });

  it('a cancelled download does not stall the session', async () => {
    const t = transport();
    const c = await openRemote(t, 'proj');
    await c.lock(holder());
    const tx = newTransactionId();
    await c.begin(tx);
    const big = randomBytes(20 << 20);
    await c.writeFile(tx, 'big', bytes(big), { hash: hashOf(big) });
    await c.commit(tx, snap('s1'));
    const s = await c.readFile('big');
    for await (const _ of s!) break; // read one chunk, walk away
    expect((await collect(await c.readFile('big'))).length).toBe(big.length);
  });

  it('refuses a mismatched protocol major version, naming both', async () => {
    const t = transport();
    await t.begin();
    const c = new AgentClient(t.channel());
    const err = await c.handshake('2.0').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransportError);
    expect((err as Error).message).toMatch(/client speaks 2\.0, this agent speaks 1\.3/);
  });

  it('anything before hello closes the session', async () => {
    const t = transport();
    await t.begin();
    const c = new AgentClient(t.channel());
    const err = await c.exists().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransportError);
    expect((err as Error).message).toMatch(/first request must be hello/);
  });

  it('second locker gets LockedError naming the holder; a dead holder is taken over', async () => {
    const { server } = fakeServer(tmp.dir, log);
    const a = await openRemote(transport(server), 'proj');
    const b = await openRemote(transport(server), 'proj');
    await a.lock(holder('alice@example.org'));
    const err = await b.lock(holder('bob@example.org')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LockedError);
    expect((err as LockedError).holder.user).toBe('alice@example.org');
    expect((err as Error).message).toMatch(/alice@example\.org on .* \(pid \d+\)/);
    await a.unlock();
    await b.lock(holder('bob@example.org'));
    await b.unlock();
    // a lock left by a process that is gone on this host is stale
    await writeFile(
      join(tmp.dir, 'proj', 'lock'),
      JSON.stringify({
        holder: { user: 'ghost', host: hostname(), pid: 2 ** 22 + 12345, since: 'x' },
        agent: { host: hostname(), pid: 2 ** 22 + 12345, session: 'x' },
      }),
    );
    await b.lock(holder('bob@example.org'));
    expect(JSON.parse(await readFile(join(tmp.dir, 'proj', 'lock'), 'utf8')).holder.user).toBe('bob@example.org');
  });

  it('a lock whose heartbeat is older than the TTL is taken over; a fresh one from another host is not', async () => {
    const { server } = fakeServer(tmp.dir, log);
    const c = await openRemote(transport(server), 'proj');
    const lockFile = join(tmp.dir, 'proj', 'lock');
    await mkdir(join(tmp.dir, 'proj'), { recursive: true });
    const foreign = {
      holder: { user: 'carol@example.org', host: 'elsewhere.example.org', pid: 1, since: '2026-01-01T00:00:00Z' },
      agent: { host: 'elsewhere.example.org', pid: 1, session: 'x' },
    };
    await writeFile(lockFile, JSON.stringify(foreign));
    const err = await c.lock(holder()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LockedError);
    expect((err as Error).message).toContain('carol@example.org on elsewhere.example.org');
    const old = new Date(Date.now() - 16 * 60_000);
    await utimes(lockFile, old, old);
    expect(await c.lock(holder())).toBeUndefined();
    expect(JSON.parse(await readFile(lockFile, 'utf8')).holder.user).toBe('alice@example.org');
    expect(log.join('\n')).toMatch(/took over a stale lock/);
  });

  it('a live holder on this host keeps its lock past the TTL (a stopped laptop); a lock taken over is never committed over', async () => {
    const { server } = fakeServer(tmp.dir, log);
    const c = await openRemote(transport(server), 'proj');
    const lockFile = join(tmp.dir, 'proj', 'lock');
    await mkdir(join(tmp.dir, 'proj'), { recursive: true });
    // a live process of this host (this test runner) that stopped refreshing long ago
    const stopped = {
      holder: { user: 'dora@example.org', host: hostname(), pid: process.pid, since: '2026-01-01T00:00:00Z' },
      agent: { host: hostname(), pid: process.pid, session: 'other' },
    };
    await writeFile(lockFile, JSON.stringify(stopped));
    const old = new Date(Date.now() - 60 * 60_000);
    await utimes(lockFile, old, old);
    await expect(c.lock(holder())).rejects.toBeInstanceOf(LockedError);
    expect(JSON.parse(await readFile(lockFile, 'utf8')).holder.user).toBe('dora@example.org');

    // this session holds the lock, writes, and meanwhile another session took it over
    await writeFile(lockFile, '');
    await utimes(lockFile, old, old); // unreadable and old: stale
    await c.lock(holder());
    const tx = newTransactionId();
    await c.begin(tx);
    await c.writeFile(tx, 'input/a.csv', bytes(Buffer.from('a')), { hash: hashOf(Buffer.from('a')) });
    await writeFile(lockFile, JSON.stringify({ ...stopped, agent: { ...stopped.agent, session: 'the-new-holder' } }));
    await expect(
      c.commit(tx, { snapshotId: 's1', message: 'm', manifestHash: 'h', user: 'u', createdAt: '2026-01-01T00:00:00Z' }),
    ).rejects.toMatchObject({ code: 'LOCK_LOST' });
    expect(await c.listSnapshots()).toEqual([]);
    expect(JSON.parse(await readFile(lockFile, 'utf8')).agent.session).toBe('the-new-holder'); // left alone
  });

  it('LocalTransport: idempotent begin, temp dir made at begin and removed at end', async () => {
    const t = transport();
    await Promise.all([t.begin(), t.begin()]);
    const dir = dirname(t.stderrFile!);
    expect(existsSync(dir)).toBe(true);
    await t.end();
    expect(existsSync(dir)).toBe(false);
    await t.end();
    expect(() => t.channel()).toThrow(TransportError);
  });

  it('mutations need the lock and an open transaction', async () => {
    const c = await openRemote(transport(), 'proj');
    const tx = newTransactionId();
    await expect(c.begin(tx)).rejects.toMatchObject({ code: 'NOT_LOCKED' });
    await c.lock(holder());
    await expect(c.writeFile(tx, 'f', bytes(Buffer.from('a')), { hash: hashOf(Buffer.from('a')) })).rejects.toThrow(
      /not open in this session/,
    );
  });
});

describe('hostile requests', () => {
  async function lockedTx(): Promise<{ c: AgentClient; t: LocalTransport; tx: TransactionId; work: string }> {
    const t = transport();
    const c = await openRemote(t, 'proj');
    await c.lock(holder());
    const tx = newTransactionId();
    const { workPath } = await c.begin(tx);
    return { c, t, tx, work: workPath };
  }
  const outside = () => join(tmp.dir, 'outside');

  it('refuses ../, absolute, NUL and backslash paths, bad link targets and repo names', async () => {
    const { c, tx, work } = await lockedTx();
    const d = Buffer.from('evil');
    for (const p of ['../escape', 'a/../../b', '/etc/passwd', 'a\0b', 'a\\b', '', 'a//b', './a']) {
      await expect(c.writeFile(tx, p, bytes(d), { hash: hashOf(d) })).rejects.toBeInstanceOf(ValidationError);
      await expect(c.deleteFile(tx, p)).rejects.toBeInstanceOf(ValidationError);
      await expect(c.readFile(p)).rejects.toBeInstanceOf(ValidationError);
    }
    for (const target of ['/etc/passwd', '../../x', 'a\0b']) {
      await expect(c.writeLink(tx, 'l', target)).rejects.toBeInstanceOf(ValidationError);
    }
    await expect(c.readSnapshotFile('../s1', 'a')).rejects.toBeInstanceOf(ValidationError);
    await expect(c.mountSnapshot('s1', '/tmp/x')).rejects.toBeInstanceOf(ValidationError);
    for (const at of ['/', 'relative/s1', '/a/../b', '/a\0b'])
      await expect(c.unmountSnapshot(at)).rejects.toBeInstanceOf(ValidationError);
    expect(await readdir(work)).toEqual([]);
    for (const name of ['../x', '.hidden', 'a/b', '', 'x'.repeat(200)]) {
      const t2 = transport();
      await t2.begin();
      const c2 = new AgentClient(t2.channel());
      await c2.handshake();
      await expect(c2.open(name)).rejects.toBeInstanceOf(ValidationError);
    }
    expect(await readdir(tmp.dir)).toEqual(['proj']);
  });

  it('refuses a write through a symlink that escapes the work area', async () => {
    const { c, tx, work } = await lockedTx();
    await mkdir(outside());
    await symlink(outside(), join(work, 'sneaky'));
    const d = Buffer.from('evil');
    await expect(c.writeFile(tx, 'sneaky/x', bytes(d), { hash: hashOf(d) })).rejects.toThrow(/is a symlink/);
    await expect(c.deleteFile(tx, 'sneaky/x')).rejects.toThrow(/symlink/);
    expect(await readdir(outside())).toEqual([]);
  });

  for (const [label, raw] of [
    ['an oversized frame', encodeHeader(FrameKind.DATA, 1, 64 << 20)],
    ['garbage bytes', Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')],
    ['malformed JSON', Buffer.concat([encodeHeader(FrameKind.REQUEST, 1000, 5), Buffer.from('{nope')])],
    ['data for a request never sent', Buffer.concat([encodeHeader(FrameKind.DATA, 999_999, 1), Buffer.from('x')])],
  ] as const) {
    it(`${label} closes the session with an error, rolls back and unlocks`, async () => {
      const { c, tx, work } = await lockedTx();
      const d = Buffer.from('half');
      await c.writeFile(tx, 'f', bytes(d), { hash: hashOf(d) });
      const lockFile = join(tmp.dir, 'proj', 'lock');
      expect(existsSync(lockFile)).toBe(true);
      const pending = c.listSnapshots();
      c.rawWrite(raw);
      const err = await pending.then(
        () => null,
        (e: unknown) => e,
      );
      if (err) expect(err).toBeInstanceOf(TransportError);
      await c.closed;
      await expect(c.exists()).rejects.toBeInstanceOf(TransportError);
      await until(() => !existsSync(work) && !existsSync(lockFile));
      expect(existsSync(join(tmp.dir, 'proj', 'current'))).toBe(false);
      expect(log.join('\n')).toMatch(/session closed with an error/);
      expect(log.join('\n')).toMatch(new RegExp(`rolled back abandoned transaction ${tx}`));
    });
  }

  it('a client that disappears mid-upload: rolled back and unlocked', async () => {
    const { c, t, tx, work } = await lockedTx();
    let sent = 0;
    async function* endless() {
      for (;;) {
        sent++;
        yield randomBytes(64 * 1024);
        await new Promise((r) => setTimeout(r, 1));
      }
    }
    const up = c.writeFile(tx, 'big', endless(), { hash: '0123456789abcdef' }).catch((e: unknown) => e);
    await until(() => sent > 20);
    await t.end(); // closes the channel under the upload
    expect(await up).toBeInstanceOf(TransportError);
    expect(existsSync(work)).toBe(false);
    expect(existsSync(join(tmp.dir, 'proj', 'lock'))).toBe(false);
  });
});

describe('end() with an abandoned download', () => {
  it('does not hang: the agent still rolls back and unlocks', async () => {
    const { server } = fakeServer(tmp.dir, log);
    const t = transport(server);
    const c = await openRemote(t, 'proj');
    await c.lock(holder());
    const tx = newTransactionId();
    await c.begin(tx);
    const big = randomBytes(30 << 20);
    await c.writeFile(tx, 'big', bytes(big), { hash: hashOf(big) });
    await c.commit(tx, snap('s1'));
    const tx2 = newTransactionId();
    const { workPath } = await c.begin(tx2);
    const s = await c.readFile('big'); // never read
    expect(s).not.toBeNull();
    await new Promise((r) => setTimeout(r, 200));
    await t.end();
    expect(existsSync(workPath)).toBe(false);
    expect(existsSync(join(tmp.dir, 'proj', 'lock'))).toBe(false);
  });
});

describe('recovery at open', () => {
  it('runs when the lock is free, is skipped while someone holds it, and a locker waits for it instead of failing', async () => {
    const { server, repos } = fakeServer(tmp.dir, log);
    const a = await openRemote(transport(server), 'proj');
    expect(repos.get('proj')!.recovered).toBe(0); // nothing on disk yet: nothing to recover
    await a.lock(holder());
    const b = await openRemote(transport(server), 'proj');
    expect(repos.get('proj')!.recovered).toBe(0); // locked by a: b's open must not recover under it
    await a.unlock();
    await openRemote(transport(server), 'proj');
    expect(repos.get('proj')!.recovered).toBe(1);
    // a lock held by the recovery probe makes a locker wait, not fail
    const lockFile = join(tmp.dir, 'proj', 'lock');
    await writeFile(
      lockFile,
      JSON.stringify({
        holder: { user: 'dsg-agent (recovery at open)', host: 'h', pid: 1, since: 'x' },
        agent: { host: 'h', pid: 1, session: 's' },
      }),
    );
    setTimeout(() => void import('node:fs/promises').then((f) => f.unlink(lockFile)), 500);
    await b.lock(holder('bob@example.org'));
    expect(JSON.parse(await readFile(lockFile, 'utf8')).holder.user).toBe('bob@example.org');
  });
});
