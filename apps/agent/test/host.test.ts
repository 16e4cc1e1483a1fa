// The agent's one mapping from a repository type to its host: the lock file
// each type gets, and ZFS's lock in the parent's REAL mountpoint, through the
// in-process agent (the CLI's localhost) and the bundled one.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { LockedError, newTransactionId, type HasherFactory } from '@dsg/contracts';
import { teardownDataset, requireZfs } from '@dsg/testenv';
import { LocalTransport, openRemote, type AgentClient } from '@dsg/transports';
import { createAgentHasher } from '../src/hasher.js';
import { agentHost, createAgentServer, type AgentConfig } from '../src/serve.js';
import { BUNDLE, hashOf, hashStream, holder, snap, tempDir } from './helpers.js';

const zfs = requireZfs();

let hasher: HasherFactory;
beforeAll(async () => (hasher = await createAgentHasher()));
let tmp: { dir: string; remove(): Promise<void> };
beforeEach(async () => (tmp = await tempDir()));
afterEach(async () => tmp.remove());

const inProcess = (config: AgentConfig): LocalTransport =>
  new LocalTransport({ mode: 'in-process', server: createAgentServer(config, hasher, () => {}) });
const bundled = (config: Extract<AgentConfig, { type: 'zfs' }>): LocalTransport =>
  new LocalTransport({
    mode: 'child',
    command: [
      process.execPath,
      BUNDLE,
      'serve',
      '--type',
      'zfs',
      '--pool',
      config.pool,
      '--mountpoint',
      config.mountpoint,
    ],
  });

async function commit(c: AgentClient, n: number, text: string): Promise<string> {
  const tx = newTransactionId();
  const b = await c.begin(tx);
  const d = Buffer.from(text);
  await c.writeFile(tx, 'data/f.txt', Readable.from([d]), { hash: hashOf(hasher, d), size: d.length });
  await c.commit(tx, snap(`s${n}`));
  return b.pattern;
}

describe('agentHost: the lock file of each repository type', () => {
  it('posix: <root>/<name>/lock; xfs (new repository): the flat layout, <root>/.<name>.dsg-lock', async () => {
    const root = join(tmp.dir, 'repos');
    expect(await agentHost({ type: 'posix', root }, hasher).lockFile('proj')).toBe(join(root, 'proj', 'lock'));
    expect(await agentHost({ type: 'xfs', root }, hasher).lockFile('proj')).toBe(join(root, '.proj.dsg-lock'));
    await mkdir(root);
    const t = inProcess({ type: 'xfs', root });
    try {
      const c = await openRemote(t, 'proj');
      await c.lock(holder());
      expect(existsSync(join(root, '.proj.dsg-lock'))).toBe(true);
      await c.unlock();
      expect(existsSync(join(root, '.proj.dsg-lock'))).toBe(false);
    } finally {
      await t.end();
    }
  });
});

describe.skipIf(!zfs)('a ZFS parent mounted somewhere other than the configured mountpoint (real pool)', () => {
  let dataset: string;
  let real: string;
  let configured: string;
  let base: string;
  beforeEach(() => {
    const name = `agent-host-${randomBytes(4).toString('hex')}`;
    dataset = `${zfs!.pool}/${name}`;
    base = mkdtempSync(join(os.tmpdir(), 'dsg-agent-mnt-'));
    real = join(base, 'real');
    execFileSync('zfs', ['create', '-o', `mountpoint=${real}`, dataset]);
    configured = join(zfs!.mount, name); // where it would be mounted by default: not where it is
  });
  afterEach(() => {
    teardownDataset(dataset);
    rmSync(base, { recursive: true, force: true });
    rmSync(configured, { recursive: true, force: true }); // only there if a lock went to the configured path (a failure)
  });

  it('in-process agent: the lock file lands in the real mountpoint; init and sync work; unlock removes it', async () => {
    const t = inProcess({ type: 'zfs', pool: dataset, mountpoint: configured });
    try {
      const c = await openRemote(t, 'proj');
      await c.lock(holder());
      expect(existsSync(join(real, '.proj.dsg-lock'))).toBe(true);
      expect(existsSync(configured)).toBe(false);
      expect(await commit(c, 1, 'first')).toBe('init');
      expect(await commit(c, 2, 'second')).toBe('sync');
      await c.unlock();
      expect(existsSync(join(real, '.proj.dsg-lock'))).toBe(false);
      expect((await c.listSnapshots()).map((s) => s.snapshotId)).toEqual(['s1', 's2']);
      expect((await hashStream(hasher, await c.readFile('data/f.txt'))).hash).toBe(
        hashOf(hasher, Buffer.from('second')),
      );
      expect(await c.listRepositories()).toEqual(['proj']);
    } finally {
      await t.end();
    }
  });

  it('agents configured with different mountpoints name the same lock file: one excludes the other', async () => {
    const right = inProcess({ type: 'zfs', pool: dataset, mountpoint: real });
    const wrong = bundled({ type: 'zfs', pool: dataset, mountpoint: configured });
    try {
      const a = await openRemote(right, 'proj');
      await a.lock(holder('alice@example.org'));
      const b = await openRemote(wrong, 'proj');
      const err = await b.lock(holder('bob@example.org')).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(LockedError);
      expect((err as LockedError).holder.user).toBe('alice@example.org');
      await a.unlock();
      await b.lock(holder('bob@example.org'));
      expect(existsSync(join(real, '.proj.dsg-lock'))).toBe(true);
      expect(await commit(b, 1, 'by bob')).toBe('init');
      await b.unlock();
    } finally {
      await right.end();
      await wrong.end();
    }
    expect(existsSync(join(real, '.proj.dsg-lock'))).toBe(false);
    expect(existsSync(configured)).toBe(false);
  });
});
