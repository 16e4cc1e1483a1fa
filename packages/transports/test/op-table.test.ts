import { PassThrough, Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { newTransactionId } from '@dsg/contracts';
import {
  AgentClient,
  FrameKind,
  OPS,
  OP_TABLE,
  agentTargetArgv,
  agentTargetOf,
  encodeHeader,
  readFrames,
  type AgentServer,
  type Op,
} from '../src/index.js';
import { fakeServer, holder, tempDir } from './helpers.js';

const names = (pick: (o: (typeof OP_TABLE)[Op]) => boolean): string[] => OPS.filter((k) => pick(OP_TABLE[k])).sort();

describe('the op table', () => {
  // the gates as they were listed by hand before the table (README "Messages", "Confinement")
  it('keeps the gates: before open, needs the lock, read-only, serialized, streams', () => {
    expect([...OPS].sort()).toEqual(
      [
        'hello',
        'listRepositories',
        'detectRepository',
        'open',
        'lock',
        'unlock',
        'exists',
        'readFile',
        'fileDigest',
        'begin',
        'commit',
        'rollback',
        'writeFile',
        'writeLink',
        'copyFile',
        'parkedContent',
        'copyParked',
        'deleteFile',
        'listSnapshots',
        'readSnapshotFile',
        'mountSnapshot',
        'unmountSnapshot',
        'recover',
        'stats',
        'writeFiles',
        'readFiles',
      ].sort(),
    );
    expect(names((o) => o.beforeOpen)).toEqual(['detectRepository', 'hello', 'listRepositories', 'open', 'stats']);
    expect(names((o) => o.needsLock)).toEqual([
      'begin',
      'commit',
      'copyFile',
      'copyParked',
      'deleteFile',
      'recover',
      'rollback',
      'writeFile',
      'writeFiles',
      'writeLink',
    ]);
    expect(names((o) => o.mutating)).toEqual([
      'begin',
      'commit',
      'copyFile',
      'copyParked',
      'deleteFile',
      'lock',
      'mountSnapshot',
      'recover',
      'rollback',
      'unlock',
      'unmountSnapshot',
      'writeFile',
      'writeFiles',
      'writeLink',
    ]);
    expect(names((o) => o.exclusive)).toEqual([
      'begin',
      'commit',
      'copyFile',
      'copyParked',
      'deleteFile',
      'lock',
      'open',
      'recover',
      'rollback',
      'unlock',
      'writeLink',
    ]);
    expect(names((o) => o.stream === 'upload')).toEqual(['writeFile', 'writeFiles']);
    expect(names((o) => o.stream === 'download')).toEqual(['readFile', 'readFiles', 'readSnapshotFile']);
  });

  it('AgentClient sends the same bytes as before the table (older agents read them)', async () => {
    const toAgent = new PassThrough();
    const fromAgent = new PassThrough();
    const c = new AgentClient({ input: fromAgent, output: toAgent });
    const tx = newTransactionId();
    const h = holder();
    const snapshot = {
      snapshotId: 's1',
      message: 'm',
      manifestHash: 'h',
      user: 'u',
      createdAt: '2026-12-01T00:00:00Z',
    };
    const calls: [() => Promise<unknown>, string][] = [
      [() => c.handshake(), JSON.stringify({ op: 'hello', protocol: '1.3', client: '@dsg/transports', pings: true })],
      [() => c.listRepositories(), '{"op":"listRepositories"}'],
      [() => c.stats(), '{"op":"stats"}'],
      [() => c.open('proj'), '{"op":"open","repo":"proj"}'],
      [() => c.lock(h), JSON.stringify({ op: 'lock', holder: h })],
      [() => c.unlock(), '{"op":"unlock"}'],
      [() => c.exists(), '{"op":"exists"}'],
      [() => c.readFile('a/b'), '{"op":"readFile","path":"a/b"}'],
      [() => c.begin(tx), JSON.stringify({ op: 'begin', tx })],
      [() => c.commit(tx, snapshot), JSON.stringify({ op: 'commit', tx, snapshot })],
      [() => c.rollback(tx), JSON.stringify({ op: 'rollback', tx })],
      [
        () => c.writeFile(tx, 'f', Readable.from([]), { hash: '00', size: 0 }),
        JSON.stringify({ op: 'writeFile', tx, path: 'f', expected: { hash: '00', size: 0 } }),
      ],
      [() => c.writeLink(tx, 'l', 'f'), JSON.stringify({ op: 'writeLink', tx, path: 'l', target: 'f' })],
      [() => c.parkedContent(), '{"op":"parkedContent"}'],
      [
        () => c.copyParked(tx, 'b', { hash: '00' }),
        JSON.stringify({ op: 'copyParked', tx, to: 'b', expected: { hash: '00' } }),
      ],
      [
        () => c.copyFile(tx, 'a', 'b', { hash: '00' }),
        JSON.stringify({ op: 'copyFile', tx, from: 'a', to: 'b', expected: { hash: '00' } }),
      ],
      [() => c.deleteFile(tx, 'f'), JSON.stringify({ op: 'deleteFile', tx, path: 'f' })],
      [() => c.listSnapshots(), '{"op":"listSnapshots"}'],
      [() => c.readSnapshotFile('s1', 'f'), '{"op":"readSnapshotFile","snapshotId":"s1","path":"f"}'],
      [() => c.mountSnapshot('s1'), '{"op":"mountSnapshot","snapshotId":"s1"}'],
      [() => c.mountSnapshot('s1', '/m'), '{"op":"mountSnapshot","snapshotId":"s1","at":"/m"}'],
      [() => c.unmountSnapshot('/m'), '{"op":"unmountSnapshot","at":"/m"}'],
      [() => c.recover(), '{"op":"recover"}'],
      [
        () => {
          // fileDigest goes only to an agent whose hello said 1.2 (this one never answers: say it did)
          c.hello = { protocol: '1.2', agent: 't', host: 'h', pid: 1, maxFramePayload: 1 << 20 };
          return c.fileDigest('a/b');
        },
        '{"op":"fileDigest","path":"a/b"}',
      ],
    ];
    const pending = calls.map(([call]) => call().catch(() => {}));
    const seen: string[] = [];
    for await (const f of readFrames(toAgent)) {
      if (f.kind !== FrameKind.REQUEST) continue;
      expect(f.id).toBe(seen.length + 1);
      seen.push(f.payload.toString('utf8'));
      if (seen.length === calls.length) break;
    }
    expect(seen).toEqual(calls.map(([, wire]) => wire));
    fromAgent.end(); // the agent "goes away": every call fails, nothing hangs
    await Promise.all(pending);
  });
});

/** Frames straight into AgentServer.serve; nothing checked on this side. */
class Raw {
  readonly input = new PassThrough();
  readonly output = new PassThrough();
  private id = 0;
  private readonly waiters = new Map<number, (m: { ok: boolean; error?: { code: string } }) => void>();
  readonly done: Promise<void>;
  constructor(server: AgentServer) {
    void server.serve(this.input, this.output);
    this.done = (async () => {
      for await (const f of readFrames(this.output)) {
        if (f.kind === FrameKind.RESPONSE)
          this.waiters.get(f.id)?.(JSON.parse(f.payload.toString('utf8')) as { ok: boolean });
      }
    })();
  }
  request(op: string, fields: Record<string, unknown> = {}): Promise<{ ok: boolean; error?: { code: string } }> {
    const id = ++this.id;
    const reply = new Promise<{ ok: boolean; error?: { code: string } }>((r) => this.waiters.set(id, r));
    const body = Buffer.from(JSON.stringify({ op, ...fields }));
    this.input.write(Buffer.concat([encodeHeader(FrameKind.REQUEST, id, body.length), body]));
    return reply;
  }
  async end(): Promise<void> {
    this.input.end();
    await this.done;
  }
}

describe('the agent applies the table in the old order: unknown op, open, lock, then the fields', () => {
  let tmp: { dir: string; remove(): Promise<void> };
  beforeEach(async () => {
    tmp = await tempDir();
  });
  afterEach(async () => {
    await tmp.remove();
  });

  it('refuses with the same codes as before', async () => {
    const r = new Raw(fakeServer(tmp.dir).server);
    expect((await r.request('hello', { protocol: '1.0' })).ok).toBe(true);
    for (const op of ['nope', '__proto__', 'constructor', 'toString', 'hasOwnProperty']) {
      expect((await r.request(op)).error?.code, op).toBe('UNKNOWN_OP');
    }
    // before open: no repository, whatever the fields (they are not even read)
    expect((await r.request('exists')).error?.code).toBe('VALIDATION');
    expect((await r.request('begin', { tx: 'garbage' })).error?.code).toBe('VALIDATION');
    expect((await r.request('readFile', { path: 7 })).error?.code).toBe('VALIDATION');
    // a refused name, then a good one
    expect((await r.request('open', { repo: 'x'.repeat(101) })).error?.code).toBe('VALIDATION');
    expect((await r.request('open', { repo: '../etc' })).error?.code).toBe('VALIDATION');
    expect((await r.request('open', { repo: 'proj' })).ok).toBe(true);
    // without the lock: NOT_LOCKED before the fields are looked at
    const tx = newTransactionId();
    expect((await r.request('begin', { tx: 'garbage' })).error?.code).toBe('NOT_LOCKED');
    expect((await r.request('writeLink', { tx, path: '../x', target: '/etc' })).error?.code).toBe('NOT_LOCKED');
    expect((await r.request('recover')).error?.code).toBe('NOT_LOCKED');
    // malformed fields (a wrong type) are TRANSPORT, refused values VALIDATION
    expect((await r.request('readFile', { path: 7 })).error?.code).toBe('TRANSPORT');
    expect((await r.request('readFile', { path: '../x' })).error?.code).toBe('VALIDATION');
    expect((await r.request('lock', { holder: 'me' })).error?.code).toBe('TRANSPORT');
    expect((await r.request('lock', { holder: holder() })).ok).toBe(true);
    expect((await r.request('begin', { tx: 'garbage' })).error?.code).toBe('VALIDATION');
    expect((await r.request('writeLink', { tx, path: 'a', target: '../../x' })).error?.code).toBe('VALIDATION');
    expect((await r.request('readSnapshotFile', { snapshotId: 's0', path: 'a' })).error?.code).toBe('VALIDATION');
    expect((await r.request('mountSnapshot', { snapshotId: 's1', at: '/tmp/x' })).error?.code).toBe('VALIDATION');
    expect((await r.request('unmountSnapshot', { at: 'relative' })).error?.code).toBe('VALIDATION');
    await r.end();
  });
});

describe('agent target flags: one table for the CLI that writes them and the agent that reads them', () => {
  it('writes the flags older agents read', () => {
    expect(agentTargetArgv({ type: 'posix', root: '/srv/dsg' })).toEqual(['--type', 'posix', '--root', '/srv/dsg']);
    expect(agentTargetArgv({ type: 'xfs', root: '/srv/x' })).toEqual(['--type', 'xfs', '--root', '/srv/x']);
    expect(agentTargetArgv({ type: 'zfs', pool: 'tank/dsg', mountpoint: '/var/repos/dsg' })).toEqual([
      '--type',
      'zfs',
      '--pool',
      'tank/dsg',
      '--mountpoint',
      '/var/repos/dsg',
    ]);
    expect(agentTargetArgv({ type: 'zfs', pool: 'tank/dsg', mountpoint: '/m', sudo: true })).toEqual([
      '--type',
      'zfs',
      '--pool',
      'tank/dsg',
      '--mountpoint',
      '/m',
      '--sudo',
    ]);
  });

  it('reads back what it wrote', () => {
    expect(agentTargetOf({ type: 'xfs', root: '/srv/x', sudo: false })).toEqual({ type: 'xfs', root: '/srv/x' });
    expect(agentTargetOf({ type: 'zfs', pool: 'p', mountpoint: '/m', sudo: true })).toEqual({
      type: 'zfs',
      pool: 'p',
      mountpoint: '/m',
      sudo: true,
    });
    expect(agentTargetOf({ type: 'zfs' })).toEqual({ type: 'zfs', pool: '', mountpoint: '', sudo: false });
  });
});
