/**
 * Packed transfers from a hostile client, against the bundled agent over the
 * REAL sshd (posix repository, non-root login): a `writeFiles` pack names up
 * to 1024 paths and carries their bytes back to back, a `readFiles` pack
 * names up to 1024 files to send. Every path must pass the same gate as a
 * single `writeFile`/`readFile`, and a pack whose data does not match what it
 * announced must land nothing beyond the files before the bad one. Nothing
 * is timed.
 */
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireSsh, requireSudoAgent } from '@dsg/testenv';
import { AGENT } from '@dsg/reliability';
import { RawAgentSession, xxh3, type Reply, type SshLogin } from '../src/agent-raw-client.js';

const ssh = requireSsh();
const agentUser = requireSudoAgent();
const BUNDLE = process.env['DSG_SECURITY_AGENT'] ?? AGENT;
const HANG_GUARD = 300_000;

const holder = { user: 'mallory@example.org', host: 'evil', pid: 1, since: '2026-12-01T00:00:00.000Z' };
const tx = '20261201T000001000Z-00000001';

const entry = (p: string, content: Buffer): { path: string; expected: { hash: string; size: number } } => ({
  path: p,
  expected: { hash: xxh3(content), size: content.length },
});

/** every path under dir (links not followed) */
function everything(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const full = path.join(d, e.name);
      out.push(path.relative(dir, full));
      if (e.isDirectory()) walk(full);
    }
  };
  walk(dir);
  return out.sort();
}

describe.skipIf(!ssh || !agentUser)('packed transfers from a hostile client (posix, non-root login, real sshd)', () => {
  let base: string;
  let root: string;
  let login: SshLogin;
  let s: RawAgentSession;
  let workPath: string;

  const refused = (r: Reply, message: RegExp): void => {
    expect(r.ok, JSON.stringify(r)).toBe(false);
    if (!r.ok) expect(`${r.error.code} ${r.error.message}`).toMatch(message);
  };

  beforeAll(async () => {
    const uid = Number(execFileSync('id', ['-u', agentUser!.user], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', agentUser!.user], { encoding: 'utf8' }).trim());
    base = mkdtempSync('/tmp/dsg-sec-batches-');
    chmodSync(base, 0o755);
    root = path.join(base, 'repos');
    mkdirSync(root);
    chownSync(root, uid, gid);
    // a file beside the repositories that a pack must never reach
    writeFileSync(path.join(base, 'outside'), 'untouched');
    login = { host: ssh!.host, port: ssh!.port, user: agentUser!.user, key: ssh!.key, knownHosts: ssh!.knownHosts };
    s = RawAgentSession.overSsh(login, [process.execPath, BUNDLE, 'serve', '--type', 'posix', '--root', root]);
    expect((await s.hello({ protocol: '1.1' }))['protocol']).toMatch(/^1\.[1-9]/);
    await s.ok('open', { repo: 'proj' });
    await s.ok('lock', { holder });
    ({ workPath } = (await s.ok('begin', { tx })) as { workPath: string });
  }, HANG_GUARD);

  afterAll(async () => {
    await s?.end();
    if (base) rmSync(base, { recursive: true, force: true });
  });

  it(
    'a pack of honest files lands, each verified (the baseline the refusals below differ from)',
    async () => {
      const a = Buffer.from('alpha'),
        b = Buffer.from('beta!');
      const r = await s.uploadPack(tx, [entry('data/a', a), entry('data/b', b)], Buffer.concat([a, b]));
      expect(r).toEqual({ ok: true, result: { sizes: [5, 5] } });
    },
    HANG_GUARD,
  );

  it.each([
    ['a parent step', '../escape'],
    ['a deeper parent step', 'data/../../escape'],
    ['an absolute path', '/tmp/dsg-escape-absolute'],
    ['an empty name', ''],
  ])(
    'a pack naming %s is refused before any byte is written',
    async (_what, bad) => {
      const x = Buffer.from('x');
      const r = await s.uploadPack(tx, [entry('data/ok-before', x), entry(bad, x)], Buffer.concat([x, x]));
      refused(r, /path|name|invalid|refus|outside|reserved/i);
      expect(everything(base).filter((p) => p.includes('escape'))).toEqual([]);
      // every path is checked before the first byte: not even the honest file before it landed
      expect(existsSync(path.join(workPath, 'data', 'ok-before'))).toBe(false);
    },
    HANG_GUARD,
  );

  it(
    'a pack through a link the same client planted is refused: nothing is written through a link',
    async () => {
      expect((await s.request('writeLink', { tx, path: 'ln', target: 'data' })).ok).toBe(true);
      const x = Buffer.from('through');
      refused(await s.uploadPack(tx, [entry('ln/x', x)], x), /link|symbolic|not a directory|refus/i);
      expect(existsSync(path.join(workPath, 'data', 'x'))).toBe(false);
    },
    HANG_GUARD,
  );

  it(
    'malformed packs are refused: duplicate paths, no size, more than 1024 files, none',
    async () => {
      const x = Buffer.from('d');
      refused(
        await s.uploadPack(tx, [entry('data/d', x), entry('data/d', x)], Buffer.concat([x, x])),
        /twice|duplicate/i,
      );
      refused(await s.uploadPack(tx, [{ path: 'data/n', expected: { hash: xxh3(x) } }], x), /size/i);
      const many = Array.from({ length: 1025 }, (_, i) => entry(`data/m${i}`, x));
      refused(await s.uploadPack(tx, many, Buffer.concat(many.map(() => x))), /1024|too many/i);
      refused(await s.uploadPack(tx, [], Buffer.alloc(0)), /1 to 1024|at least|empty|files/i);
      expect(existsSync(path.join(workPath, 'data', 'd'))).toBe(false);
      expect(existsSync(path.join(workPath, 'data', 'm0'))).toBe(false);
    },
    HANG_GUARD,
  );

  it(
    'data shorter or longer than announced is refused (a file complete as announced stays, the excess lands nowhere); bytes that do not hash as announced never land',
    async () => {
      const ten = Buffer.from('0123456789');
      refused(await s.uploadPack(tx, [entry('data/short', ten)], ten.subarray(0, 5)), /short|ended|size|length/i);
      refused(
        await s.uploadPack(tx, [entry('data/long', ten)], Buffer.concat([ten, Buffer.from('extra')])),
        /long|more|size|length|beyond/i,
      );
      const lie = { path: 'data/lie', expected: { hash: xxh3(Buffer.from('other')), size: 5 } };
      refused(await s.uploadPack(tx, [lie], Buffer.from('bytes')), /hash|mismatch/i);
      for (const f of ['short', 'lie']) expect(existsSync(path.join(workPath, 'data', f))).toBe(false);
      expect(readFileSync(path.join(workPath, 'data', 'long'))).toEqual(ten);
    },
    HANG_GUARD,
  );

  it(
    'readFiles refuses paths outside the repository and over-long packs; the session still serves afterwards',
    async () => {
      refused(
        await s.request('readFiles', { files: [{ path: '../outside', size: 9 }] }),
        /path|refus|outside|invalid/i,
      );
      refused(
        await s.request('readFiles', { files: [{ path: path.join(base, 'outside'), size: 9 }] }),
        /path|refus|outside|invalid|absolute/i,
      );
      const many = Array.from({ length: 1025 }, (_, i) => ({ path: `data/r${i}`, size: 1 }));
      refused(await s.request('readFiles', { files: many }), /1024|too many/i);
      expect(await s.ok('stats')).toMatchObject({ pid: expect.any(Number) as unknown });
    },
    HANG_GUARD,
  );

  it(
    'after every refusal: nothing outside the repository changed, and the work area holds only the honest files',
    () => {
      expect(everything(base).filter((p) => !p.startsWith('repos'))).toEqual(['outside']);
      expect(
        everything(workPath)
          .filter((p) => p.startsWith('data/'))
          .sort(),
      ).toEqual(['data/a', 'data/b', 'data/long']);
    },
    HANG_GUARD,
  );
});
