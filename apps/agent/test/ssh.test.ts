import { Readable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { once } from 'node:events';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { LockedError, TransportError, ValidationError, newTransactionId, type HasherFactory } from '@dsg/contracts';
import { requireSsh } from '@dsg/testenv';
import {
  FrameKind,
  SshTransport,
  encodeHeader,
  openRemote,
  type AgentClient,
  type SshTransportOptions,
} from '@dsg/transports';
import { createAgentHasher } from '../src/hasher.js';
import { BUNDLE, alive, hashOf, hashStream, holder, snap, sshdSessionChain, tempDir, until } from './helpers.js';

const ssh = requireSsh();
const MiB = 1 << 20;

let hasher: HasherFactory;
beforeAll(async () => (hasher = await createAgentHasher()));

let tmp: { dir: string; remove(): Promise<void> };
let open: SshTransport[];
beforeEach(async () => {
  tmp = await tempDir();
  open = [];
});
afterEach(async () => {
  for (const t of open) await t.end();
  await tmp.remove();
});

function transport(root: string, logFile?: string, extra: Partial<SshTransportOptions> = {}): SshTransport {
  const t = new SshTransport({
    ...extra,
    host: ssh!.host,
    port: ssh!.port,
    user: ssh!.user,
    identityFile: ssh!.key,
    knownHostsFile: ssh!.knownHosts,
    sshConfigFile: join(tmp.dir, 'no-ssh-config'),
    agentSocket: null,
    agentCommand: [
      'node',
      BUNDLE,
      'serve',
      '--type',
      'posix',
      '--root',
      root,
      ...(logFile ? ['--log-file', logFile] : []),
    ],
  });
  open.push(t);
  return t;
}

/** Deterministic file content from its index, so nothing is kept in memory. */
function content(i: number, size: number): Buffer {
  const b = Buffer.alloc(size);
  for (let off = 0; off + 8 <= size; off += 32) {
    b.writeUInt32BE(i, off);
    b.writeUInt32BE(off, off + 4);
  }
  if (size > 0 && size < 8) b.fill(i & 0xff);
  return b;
}

describe.skipIf(!ssh)('dsg-agent over real SSH (posix backend)', () => {
  it('round trip: 1,000 files (0 B, 1 B, 1 MiB, one 200 MiB) byte-identical; memory bounded on both sides', async () => {
    const root = join(tmp.dir, 'repos');
    const big = join(tmp.dir, 'big.bin');
    {
      const w = createWriteStream(big);
      for (let i = 0; i < 200; i++) if (!w.write(randomBytes(MiB))) await once(w, 'drain');
      w.end();
      await once(w, 'finish');
    }
    const bigHash = (await hashStream(hasher, createReadStream(big, { highWaterMark: MiB }))).hash;
    const files: { path: string; size: number; hash: string }[] = [];
    for (let i = 0; i < 999; i++) {
      const size = i < 400 ? 0 : i < 800 ? 1 : MiB;
      files.push({ path: `d${i % 10}/f${i}`, size, hash: hashOf(hasher, content(i, size)) });
    }

    const c = await openRemote(transport(root), 'proj');
    const agentBase = await c.stats();
    await c.lock(holder());
    const tx = newTransactionId();
    await c.begin(tx);

    // the 200 MiB file first, sampling this process's RSS while it streams
    global.gc?.();
    const rss0 = process.memoryUsage().rss;
    let clientPeak = rss0;
    const sampler = setInterval(() => (clientPeak = Math.max(clientPeak, process.memoryUsage().rss)), 20);
    const put = await c.writeFile(tx, 'big/big.bin', createReadStream(big, { highWaterMark: MiB }), {
      hash: bigHash,
      size: 200 * MiB,
    });
    expect(put.size).toBe(200 * MiB);
    const agentAfterUpload = await c.stats();

    let next = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < files.length) {
          const i = next++;
          const f = files[i]!;
          await c.writeFile(tx, f.path, Readable.from([content(i, f.size)]), { hash: f.hash, size: f.size });
        }
      }),
    );
    await c.commit(tx, snap('s1'));
    await c.unlock();

    const down = await hashStream(hasher, await c.readFile('big/big.bin'));
    clearInterval(sampler);
    expect(down).toEqual({ hash: bigHash, size: 200 * MiB });
    next = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < files.length) {
          const f = files[next++]!;
          expect(await hashStream(hasher, await c.readFile(f.path))).toEqual({ hash: f.hash, size: f.size });
        }
      }),
    );
    const agentEnd = await c.stats();
    const clientGrowth = clientPeak - rss0;
    const agentGrowth = Math.max(agentAfterUpload.peakRss!, agentEnd.peakRss!) - agentBase.rss;
    console.log(
      `memory: client RSS growth ${(clientGrowth / MiB).toFixed(1)} MiB; agent peak RSS growth ${(agentGrowth / MiB).toFixed(1)} MiB (base ${(agentBase.rss / MiB).toFixed(1)} MiB)`,
    );
    expect(agentBase.peakRss).not.toBeNull();
    expect(clientGrowth).toBeLessThan(150 * MiB);
    expect(agentGrowth).toBeLessThan(150 * MiB);
    expect((await c.listSnapshots()).map((s) => s.snapshotId)).toEqual(['s1']);
  });

  it('connection killed mid-upload: client gets TransportError within seconds; agent rolled back and unlocked', async () => {
    const root = join(tmp.dir, 'repos');
    const agentLog = join(tmp.dir, 'agent.log');
    const c = await openRemote(transport(root, agentLog), 'proj');
    const agentPid = c.hello!.pid;
    await c.lock(holder());
    const tx = newTransactionId();
    const { workPath } = await c.begin(tx);
    let sent = 0;
    async function* slow() {
      for (;;) {
        sent += 256 * 1024;
        yield randomBytes(256 * 1024);
        await new Promise((r) => setTimeout(r, 2));
      }
    }
    const upload = c.writeFile(tx, 'huge.bin', slow(), { hash: '0123456789abcdef' }).then(
      () => null,
      (e: unknown) => e,
    );
    await until(() => sent > 8 * MiB, 120_000, 'upload under way');
    expect(existsSync(join(root, 'proj', 'lock'))).toBe(true);
    const chain = sshdSessionChain(agentPid);
    expect(chain.length).toBeGreaterThan(0);
    const killedAt = Date.now();
    for (const pid of chain) process.kill(pid, 'SIGKILL');
    const err = await upload;
    const took = Date.now() - killedAt;
    expect(err).toBeInstanceOf(TransportError);
    expect(took).toBeLessThan(60_000); // a hang guard: without detection it would wait forever
    await expect(c.exists()).rejects.toBeInstanceOf(TransportError);
    // the agent notices its stdin closed, rolls back, unlocks and exits
    await until(() => !alive(agentPid), 120_000, 'agent exit');
    const logText = await readFile(agentLog, 'utf8');
    expect(logText, logText).toMatch(/rolled back abandoned transaction/);
    expect(existsSync(join(root, 'proj', 'lock'))).toBe(false);
    expect(existsSync(workPath)).toBe(false);
    expect(await readdir(join(root, 'proj', 'tx')).catch(() => [])).toEqual([]);
    // and the repository is usable again
    const c2 = await openRemote(transport(root), 'proj');
    await c2.lock(holder('bob@example.org'));
    expect(await c2.exists()).toBe(false);
  });

  it('a silently dead connection (sshd frozen, no FIN) is detected by keepalive: TransportError, then the agent cleans up', async () => {
    const root = join(tmp.dir, 'repos');
    const c = await openRemote(transport(root, undefined, { keepaliveMs: 500, keepaliveCountMax: 2 }), 'proj');
    const agentPid = c.hello!.pid;
    await c.lock(holder());
    const tx = newTransactionId();
    const { workPath } = await c.begin(tx);
    const chain = sshdSessionChain(agentPid);
    for (const pid of chain) process.kill(pid, 'SIGSTOP');
    try {
      const t0 = Date.now();
      const err = await c.listSnapshots().then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(TransportError);
      expect(Date.now() - t0).toBeLessThan(60_000); // a hang guard: without keepalive a frozen connection would wait forever
    } finally {
      for (const pid of chain) process.kill(pid, 'SIGCONT');
    }
    // once sshd runs again it sees the closed socket; the agent's stdin ends and it cleans up
    await until(() => !alive(agentPid), 120_000, 'agent exit');
    expect(existsSync(join(root, 'proj', 'lock'))).toBe(false);
    expect(existsSync(workPath)).toBe(false);
  });

  it('two clients: the second lock attempt gets LockedError naming the holder', async () => {
    const root = join(tmp.dir, 'repos');
    const a = await openRemote(transport(root), 'proj');
    const b = await openRemote(transport(root), 'proj');
    await a.lock(holder('alice@example.org'));
    const err = await b.lock(holder('bob@example.org')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LockedError);
    expect((err as LockedError).holder).toMatchObject({ user: 'alice@example.org', pid: process.pid });
    expect((err as Error).message).toContain('alice@example.org');
    await a.unlock();
    await b.lock(holder('bob@example.org'));
  });

  it('hostile requests over SSH are refused and leave the repository unchanged', async () => {
    const root = join(tmp.dir, 'repos');
    const c: AgentClient = await openRemote(transport(root), 'proj');
    await c.lock(holder());
    const tx = newTransactionId();
    const { workPath } = await c.begin(tx);
    const d = Buffer.from('x');
    for (const p of ['../x', '/etc/passwd', 'a\0b', 'tx/../../x']) {
      await expect(c.writeFile(tx, p, Readable.from([d]), { hash: hashOf(hasher, d) })).rejects.toBeInstanceOf(
        ValidationError,
      );
    }
    await expect(c.writeLink(tx, 'l', '../../../etc')).rejects.toBeInstanceOf(ValidationError);
    expect(await readdir(workPath)).toEqual([]);
    c.rawWrite(encodeHeader(FrameKind.DATA, 1, 512 * MiB));
    await c.closed;
    await expect(c.exists()).rejects.toThrow(/exceeds the limit/);
    await until(() => !existsSync(join(root, 'proj', 'lock')) && !existsSync(workPath), 120_000, 'rollback and unlock');
    expect(await readdir(join(root, 'proj'))).not.toContain('current');
  });
});
