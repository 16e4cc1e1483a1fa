/**
 * A hostile client against the bundled dsg-agent over the REAL sshd.
 *
 * The attack (security review, critical item 2): build a chain of links
 * that each look "inside" lexically — `l1 -> .`, `l2 -> l1/..`, … — which
 * physically climbs out of the work area up to `/`, then race
 * `writeLink x -> lN/<victim dir>` against `writeFile x/<name>` so the
 * file lands where the chain points: the server user's files (here a
 * canary and a stand-in `authorized_keys` it owns, in a directory outside
 * the repository root). Thousands of attempts, bounded in count; nothing
 * is timed. Plus the same race with a link pointing INSIDE (`y -> sub`):
 * nothing may ever be written through a link.
 *
 * DSG_SECURITY_AGENT=<path to a dsg-agent.mjs> runs the same attacks
 * against another build (how the old code was shown to fail them).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshParent, requireSsh, requireSudoAgent, requireZfs, type TestParent } from '@dsg/testenv';
import { AGENT } from '@dsg/reliability';
import { RawAgentSession, type Reply, type SshLogin } from '../src/agent-raw-client.js';

const ssh = requireSsh();
const agentUser = requireSudoAgent();
const zfs = requireZfs();
const BUNDLE = process.env['DSG_SECURITY_AGENT'] ?? AGENT;
/** race attempts per attack (each attempt: 6 requests sent at once with its batch) */
const ATTEMPTS = Number(process.env['DSG_SECURITY_ATTEMPTS'] ?? 1500);
/** attempts per batch: 5 × 6 = 30 requests in flight, under the agent's cap of 32 */
const BATCH = 5;
const HANG_GUARD = 900_000;

interface Victim {
  dir: string;
  canary: string;
  keys: string;
  canaryBytes: Buffer;
  keysBytes: Buffer;
}

/** path → `dir <uid>` | `-> target` | `<uid> <content base64>` of everything under dir (minus skip), links never followed */
function tree(dir: string, skip: (rel: string) => boolean = () => false): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string): void => {
    for (const n of readdirSync(d).sort()) {
      const full = path.join(d, n);
      const rel = path.relative(dir, full);
      if (skip(rel)) continue;
      const st = lstatSync(full);
      if (st.isDirectory()) {
        out[rel] = `dir ${st.uid}`;
        walk(full);
      } else if (st.isSymbolicLink()) out[rel] = `-> ${readlinkSync(full)}`;
      else out[rel] = `${st.uid} ${readFileSync(full).toString('base64')}`;
    }
  };
  walk(dir);
  return out;
}

function makeVictim(base: string, uid: number, gid: number): Victim {
  const dir = path.join(base, 'victim-home');
  mkdirSync(path.join(dir, '.ssh'), { recursive: true });
  const canary = path.join(dir, 'canary');
  const keys = path.join(dir, '.ssh', 'authorized_keys');
  const canaryBytes = randomBytes(64);
  const keysBytes = Buffer.from(
    'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOwnerOwnerOwnerOwnerOwnerOwnerOwnerOwnerOw owner@example.org\n',
  );
  writeFileSync(canary, canaryBytes, { mode: 0o644 });
  writeFileSync(keys, keysBytes, { mode: 0o600 });
  for (const p of [dir, path.join(dir, '.ssh'), canary, keys]) chownSync(p, uid, gid);
  chmodSync(path.join(dir, '.ssh'), 0o700);
  return { dir, canary, keys, canaryBytes, keysBytes };
}

function idOf(user: string, flag: '-u' | '-g'): number {
  return Number(execFileSync('id', [flag, user], { encoding: 'utf8' }).trim());
}

interface AttackResult {
  /** which chain links the agent accepted */
  chain: { link: string; target: string; ok: boolean }[];
  /** outcomes of the racing requests */
  accepted: number;
  refused: number;
  /** set when something changed outside the repository */
  breach: string | null;
  /** the inside-link race: what arrived in sub/ through y_i -> sub */
  throughInside: string[];
  /** the replies of the race that were errors other than refusals (for the record) */
  errors: Set<string>;
}

/**
 * One session: open, lock, begin; the link chain; `ATTEMPTS` racing rounds;
 * every batch checks the victim directory and stops at the first breach.
 */
async function attack(
  session: RawAgentSession,
  o: {
    attempts: number;
    workDepth: (workPath: string) => number;
    victim: Victim;
    outside: () => Record<string, string>;
  },
): Promise<AttackResult> {
  await session.hello();
  await session.ok('open', { repo: 'proj' });
  await session.ok('lock', {
    holder: { user: 'mallory@example.org', host: 'evil', pid: 1, since: new Date().toISOString() },
  });
  const tx = `20261201T000000000Z-${randomBytes(4).toString('hex')}`;
  const { workPath } = (await session.ok('begin', { tx })) as { workPath: string };
  const levels = o.workDepth(workPath) + 1; // l_levels is `/`
  const chain: AttackResult['chain'] = [];
  for (let i = 1; i <= levels; i++) {
    const link = `l${i}`;
    const target = i === 1 ? '.' : `l${i - 1}/..`;
    chain.push({ link, target, ok: (await session.request('writeLink', { tx, path: link, target })).ok });
  }
  const victimRel = o.victim.dir.slice(1); // from `/`
  const out: AttackResult = { chain, accepted: 0, refused: 0, breach: null, throughInside: [], errors: new Set() };
  expect((await session.upload(tx, 'sub/keep', Buffer.from('keep'))).ok).toBe(true);
  const before = o.outside();
  const evilKey = Buffer.from(
    'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMalloryMalloryMalloryMalloryMalloryMallory mallory\n',
  );
  for (let i = 0; i < o.attempts && !out.breach; i += BATCH) {
    const replies: Promise<Reply>[] = [];
    for (let j = i; j < Math.min(i + BATCH, o.attempts); j++) {
      const link = (): Promise<Reply> =>
        session.request('writeLink', { tx, path: `x${j}`, target: `l${levels}/${victimRel}` });
      const inside = (): Promise<Reply> => session.request('writeLink', { tx, path: `y${j}`, target: 'sub' });
      // alternate which request goes first: the link has to land between the write's check and its mkdir/open
      if (j % 2 === 0) replies.push(link(), inside());
      replies.push(session.upload(tx, `x${j}/canary`, Buffer.from(`pwned ${j}`)));
      replies.push(session.upload(tx, `x${j}/.ssh/authorized_keys`, evilKey));
      replies.push(session.upload(tx, `x${j}/new-${j}/f`, Buffer.from(`new ${j}`)));
      replies.push(session.upload(tx, `y${j}/f${j}`, Buffer.from(`through ${j}`)));
      if (j % 2 === 1) replies.push(link(), inside());
    }
    for (const r of await Promise.all(replies)) {
      if (r.ok) out.accepted++;
      else {
        out.refused++;
        if (r.error.code === 'CLOSED')
          throw new Error(`the agent closed the session: ${JSON.stringify(session.closedWith)}`);
        if (r.error.code !== 'VALIDATION') out.errors.add(`${r.error.code}: ${r.error.message.slice(0, 120)}`);
      }
    }
    const now = o.outside();
    if (!readFileSync(o.victim.canary).equals(o.victim.canaryBytes)) out.breach = 'the canary was overwritten';
    else if (!readFileSync(o.victim.keys).equals(o.victim.keysBytes)) out.breach = 'authorized_keys was overwritten';
    else if (JSON.stringify(now) !== JSON.stringify(before))
      out.breach = `outside the repository changed: ${JSON.stringify(Object.keys(now).filter((k) => now[k] !== before[k]))}`;
    const sub = readdirSync(path.join(workPath, 'sub')).filter((n) => n !== 'keep');
    if (sub.length) out.throughInside.push(...sub);
  }
  return out;
}

describe.skipIf(!ssh || !agentUser)(
  'a hostile client cannot make the agent write outside its repository (posix, non-root login, real sshd)',
  () => {
    let base: string;
    let victim: Victim;
    let root: string;
    let login: SshLogin;
    beforeAll(() => {
      const uid = idOf(agentUser!.user, '-u');
      const gid = idOf(agentUser!.user, '-g');
      base = mkdtempSync('/tmp/dsg-sec-agent-');
      chmodSync(base, 0o755);
      victim = makeVictim(base, uid, gid);
      root = path.join(base, 'repos');
      mkdirSync(root);
      chownSync(root, uid, gid);
      login = { host: ssh!.host, port: ssh!.port, user: agentUser!.user, key: ssh!.key, knownHosts: ssh!.knownHosts };
    });
    afterAll(() => {
      if (base) rmSync(base, { recursive: true, force: true });
    });

    it(
      `link chain l1 -> ., l2 -> l1/.., … up to /, raced against writes through it (${ATTEMPTS} attempts): nothing outside changes, nothing goes through a link`,
      async () => {
        const outside = (): Record<string, string> => tree(base, (rel) => rel === 'repos');
        const before = outside();
        const s = RawAgentSession.overSsh(login, [
          process.execPath,
          BUNDLE,
          'serve',
          '--type',
          'posix',
          '--root',
          root,
        ]);
        let r: AttackResult;
        try {
          r = await attack(s, {
            attempts: ATTEMPTS,
            workDepth: (w) => w.split('/').filter(Boolean).length,
            victim,
            outside,
          });
        } finally {
          await s.end();
        }
        expect(r.breach).toBeNull();
        expect(readFileSync(victim.canary).equals(victim.canaryBytes)).toBe(true);
        expect(readFileSync(victim.keys).equals(victim.keysBytes)).toBe(true);
        expect(outside()).toEqual(before);
        expect(r.throughInside).toEqual([]);
        // the gate: the chain is refused where it would climb out through a link
        expect(r.chain[0]).toEqual({ link: 'l1', target: '.', ok: false });
        expect(r.chain.slice(1).every((c) => !c.ok)).toBe(true);
        expect([...r.errors]).toEqual([]);
        expect(r.accepted).toBeGreaterThan(0); // the session really ran: y_i -> sub, x_i links, and the writes that won the race
        // the session ended: rolled back and unlocked
        // (parked/: uploads that won the race and were verified, kept for a resumed sync by design)
        expect(readdirSync(path.join(root, 'proj')).filter((n) => n !== 'tx' && n !== 'parked')).toEqual([]);
      },
      HANG_GUARD,
    );
  },
);

describe.skipIf(!ssh || !zfs)(
  '… nor on ZFS, where mkdir -p followed a racing link (root login, real sshd and pool)',
  () => {
    let base: string;
    let parent: TestParent;
    let victim: Victim;
    let login: SshLogin;
    beforeAll(() => {
      base = mkdtempSync('/tmp/dsg-sec-agent-zfs-');
      chmodSync(base, 0o755);
      victim = makeVictim(base, 0, 0);
      parent = freshParent(zfs!, 'sec');
      login = { host: ssh!.host, port: ssh!.port, user: ssh!.user, key: ssh!.key, knownHosts: ssh!.knownHosts };
    });
    afterAll(() => {
      parent?.destroy();
      if (base) rmSync(base, { recursive: true, force: true });
    });

    it(
      `link chain up to / raced against writes (${Math.ceil(ATTEMPTS / 3)} attempts): no file and no directory appears outside`,
      async () => {
        const outside = (): Record<string, string> => tree(base);
        const before = outside();
        const s = RawAgentSession.overSsh(login, [
          process.execPath,
          BUNDLE,
          'serve',
          '--type',
          'zfs',
          '--pool',
          parent.dataset,
          '--mountpoint',
          parent.mountpoint,
        ]);
        let r: AttackResult;
        try {
          r = await attack(s, {
            attempts: Math.ceil(ATTEMPTS / 3),
            workDepth: (w) => w.split('/').filter(Boolean).length,
            victim,
            outside,
          });
        } finally {
          await s.end();
        }
        expect(r.breach).toBeNull();
        expect(outside()).toEqual(before);
        expect(r.throughInside).toEqual([]);
        expect(r.chain.every((c) => !c.ok)).toBe(true);
        expect([...r.errors]).toEqual([]);
        expect(existsSync(path.join(parent.mountpoint, 'proj'))).toBe(false); // nothing committed, the init rolled back
      },
      HANG_GUARD,
    );
  },
);
