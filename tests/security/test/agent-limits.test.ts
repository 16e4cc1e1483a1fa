/**
 * What one hostile session can make the bundled agent do over the REAL
 * sshd, beyond writing files: hold unbounded requests (memory), reach other
 * repositories than the one its key is for, change a repository through a
 * read-only key. The agent runs as the non-root login; nothing is timed.
 */
import { execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, chmodSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireSsh, requireSudoAgent } from '@dsg/testenv';
import { AGENT } from '@dsg/reliability';
import { RawAgentSession, type SshLogin } from '../src/agent-raw-client.js';

const ssh = requireSsh();
const agentUser = requireSudoAgent();
const BUNDLE = process.env['DSG_SECURITY_AGENT'] ?? AGENT;
const HANG_GUARD = 300_000;
/** the agent's documented cap (MAX_IN_FLIGHT of @dsg/transports) */
const CAP = 32;

const holder = { user: 'mallory@example.org', host: 'evil', pid: 1, since: '2026-12-01T00:00:00.000Z' };
const txId = (n: number): string => `20261201T00000${n}000Z-0000000${n}`;

describe.skipIf(!ssh || !agentUser)('agent limits against a hostile session (posix, non-root login, real sshd)', () => {
  let base: string;
  let root: string;
  let login: SshLogin;
  const agent = (...extra: string[]): RawAgentSession =>
    RawAgentSession.overSsh(login, [process.execPath, BUNDLE, 'serve', '--type', 'posix', '--root', root, ...extra]);

  /** a repository with one committed snapshot, made through the agent itself */
  async function seed(name: string): Promise<void> {
    const s = agent();
    try {
      await s.hello();
      await s.ok('open', { repo: name });
      await s.ok('lock', { holder });
      await s.ok('begin', { tx: txId(1) });
      expect((await s.upload(txId(1), 'data/f', Buffer.from(name))).ok).toBe(true);
      await s.ok('commit', {
        tx: txId(1),
        snapshot: { snapshotId: 's1', message: 'm', manifestHash: 'h', user: 'u', createdAt: '2026-12-01T00:00:00Z' },
      });
      await s.ok('unlock');
    } finally {
      await s.end();
    }
  }

  beforeAll(async () => {
    const uid = Number(execFileSync('id', ['-u', agentUser!.user], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', agentUser!.user], { encoding: 'utf8' }).trim());
    base = mkdtempSync('/tmp/dsg-sec-limits-');
    chmodSync(base, 0o755);
    root = path.join(base, 'repos');
    mkdirSync(root);
    chownSync(root, uid, gid);
    login = { host: ssh!.host, port: ssh!.port, user: agentUser!.user, key: ssh!.key, knownHosts: ssh!.knownHosts };
    await seed('proj');
    await seed('secret');
  }, HANG_GUARD);
  afterAll(() => {
    if (base) rmSync(base, { recursive: true, force: true });
  });

  it(
    `requests in flight: ${CAP} are served, one more ends the session with a clear error; rolled back, unlocked`,
    async () => {
      const s = agent();
      try {
        await s.hello();
        await s.ok('open', { repo: 'proj' });
        await s.ok('lock', { holder });
        await s.ok('begin', { tx: txId(2) });
        // uploads that never send data stay in flight for as long as the client likes
        const hanging = Array.from(
          { length: CAP - 1 },
          (_, i) => s.send('writeFile', { tx: txId(2), path: `h${i}`, expected: { hash: '00' } }).reply,
        );
        expect((await s.request('stats')).ok).toBe(true); // the 32nd: still served
        hanging.push(s.send('writeFile', { tx: txId(2), path: 'last', expected: { hash: '00' } }).reply);
        const over = await s.request('stats'); // the 33rd
        expect(over.ok).toBe(false);
        const exit = await s.exited;
        expect(s.closedWith).toMatchObject({
          ok: false,
          error: { message: expect.stringMatching(new RegExp(`more than ${CAP} requests in flight`)) as unknown },
        });
        expect(exit.stderr).toMatch(/requests in flight/);
        for (const h of await Promise.all(hanging)) expect(h.ok).toBe(false);
      } finally {
        s.kill();
      }
      expect(existsSync(path.join(root, 'proj', 'lock'))).toBe(false);
      expect(readdirSync(path.join(root, 'proj')).sort()).toEqual(['current', 'snapshots']);
    },
    HANG_GUARD,
  );

  it(
    'lock liveness: a client that offered PINGs and then falls silent (stopped, frozen) loses its session: rolled back, unlocked',
    async () => {
      const s = agent('--client-silence', '1');
      try {
        expect((await s.hello({ pings: true }))['clientPingMs']).toBe(250);
        await s.ok('open', { repo: 'proj' });
        await s.ok('lock', { holder });
        await s.ok('begin', { tx: txId(4) });
        expect(existsSync(path.join(root, 'proj', 'lock'))).toBe(true);
        const exit = await s.exited; // nothing more is sent: the agent ends the session
        expect(s.closedWith).toMatchObject({
          ok: false,
          error: { message: expect.stringMatching(/the client sent nothing for 1\.0 s/) as unknown },
        });
        expect(exit.stderr).toMatch(/rolled back abandoned transaction/);
      } finally {
        s.kill();
      }
      expect(existsSync(path.join(root, 'proj', 'lock'))).toBe(false);
      expect(readdirSync(path.join(root, 'proj')).sort()).toEqual(['current', 'snapshots']);
    },
    HANG_GUARD,
  );

  it(
    '--restrict-to-repository proj: "secret" is refused at open and hidden from the listing',
    async () => {
      const s = agent('--restrict-to-repository', 'proj');
      try {
        await s.hello();
        expect(await s.ok('listRepositories')).toEqual(['proj']);
        const r = await s.request('open', { repo: 'secret' });
        expect(r).toMatchObject({
          ok: false,
          error: { code: 'RESTRICTED', message: expect.stringMatching(/serves only the repository "proj"/) as unknown },
        });
        const again = await s.request('readFile', { path: 'data/f' });
        expect(again.ok).toBe(false); // nothing was opened
        await s.ok('open', { repo: 'proj' });
        expect(await s.ok('listSnapshots')).toHaveLength(1);
      } finally {
        await s.end();
      }
      // without the flag the same key reaches both (what the flag is for)
      const free = agent();
      try {
        await free.hello();
        expect(await free.ok('listRepositories')).toEqual(['proj', 'secret']);
      } finally {
        await free.end();
      }
    },
    HANG_GUARD,
  );

  it(
    '--read-only: reads work; lock, begin, writes, deletes, commit, recover are refused; nothing changes on disk',
    async () => {
      const before = JSON.stringify(readdirSync(path.join(root, 'proj'), { recursive: true }).sort());
      const s = agent('--read-only');
      try {
        await s.hello();
        await s.ok('open', { repo: 'proj' });
        expect(await s.ok('exists')).toBe(true);
        expect(await s.ok('listSnapshots')).toHaveLength(1);
        const tx = txId(3);
        for (const [op, fields] of [
          ['lock', { holder }],
          ['begin', { tx }],
          ['writeLink', { tx, path: 'l', target: 'data/f' }],
          ['deleteFile', { tx, path: 'data/f' }],
          [
            'commit',
            {
              tx,
              snapshot: {
                snapshotId: 's2',
                message: 'm',
                manifestHash: 'h',
                user: 'u',
                createdAt: '2026-12-01T00:00:00Z',
              },
            },
          ],
          ['rollback', { tx }],
          ['recover', {}],
          ['unlock', {}],
          ['mountSnapshot', { snapshotId: 's1' }],
        ] as const) {
          const r = await s.request(op, fields);
          expect(r, op).toMatchObject({ ok: false, error: { code: 'READ_ONLY' } });
        }
        expect(await s.upload(tx, 'data/x', Buffer.from('x'))).toMatchObject({
          ok: false,
          error: { code: 'READ_ONLY' },
        });
      } finally {
        await s.end();
      }
      expect(JSON.stringify(readdirSync(path.join(root, 'proj'), { recursive: true }).sort())).toBe(before);
    },
    HANG_GUARD,
  );
});
