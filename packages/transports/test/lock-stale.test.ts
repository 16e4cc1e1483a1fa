import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LockedError } from '@dsg/contracts';
import { RepositoryLock } from '../src/server-entry.js';
import { holder, tempDir } from './helpers.js';

let tmp: { dir: string; remove(): Promise<void> };
beforeEach(async () => (tmp = await tempDir()));
afterEach(async () => tmp.remove());

const DEAD = 2 ** 22 + 4321;

describe('RepositoryLock staleness', () => {
  it('a live agent keeps its lock even when the client that asked for it is gone (stopped agent, agent still committing)', async () => {
    const file = join(tmp.dir, 'lock');
    // the agent: a live process on this host (stopped, as after SIGSTOP); its client: dead
    const agent = spawn('sleep', ['30']);
    try {
      agent.kill('SIGSTOP');
      await writeFile(
        file,
        JSON.stringify({
          holder: { user: 'ana@example.org', host: hostname(), pid: DEAD, since: 'x' },
          agent: { host: hostname(), pid: agent.pid, session: 's' },
        }),
      );
      const err = await new RepositoryLock(file).acquire(holder('bob@example.org')).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(LockedError);
      expect((err as LockedError).holder.user).toBe('ana@example.org');
    } finally {
      agent.kill('SIGKILL');
    }
    await new Promise((r) => agent.once('close', r));
    // once the agent is gone the lock is stale
    const l = new RepositoryLock(file);
    expect(await l.acquire(holder('bob@example.org'))).toEqual({ tookOver: true });
    await l.release();
  });

  it('a dead client is judged by its own pid only when the record names no agent here', async () => {
    const file = join(tmp.dir, 'lock');
    await writeFile(
      file,
      JSON.stringify({
        holder: { user: 'ana@example.org', host: hostname(), pid: DEAD, since: 'x' },
        agent: { host: 'elsewhere.example.org', pid: 1, session: 's' },
      }),
    );
    const l = new RepositoryLock(file);
    expect(await l.acquire(holder('bob@example.org'))).toEqual({ tookOver: true });
    await l.release();
  });

  it('a zombie agent (killed, never reaped: orphaned under an init that does not reap) holds nothing', async () => {
    const file = join(tmp.dir, 'lock');
    // the child becomes a zombie of `sleep 30`, which never waits for it. It exits only once its
    // parent has exec'd sleep: a child that exits first can be reaped by sh itself (seen on a busy CI)
    const child = 'until [ "$(cat /proc/$PPID/comm)" = sleep ]; do sleep 0.02; done';
    const parent = spawn('sh', ['-c', 'sh -c "$1" & echo $!; exec sleep 30', 'sh', child]);
    try {
      const zombie = await new Promise<number>((resolve) =>
        parent.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))),
      );
      const state = (): string => {
        const s = readFileSync(`/proc/${zombie}/stat`, 'utf8');
        return s.charAt(s.lastIndexOf(')') + 2);
      };
      for (let i = 0; i < 1500 && state() !== 'Z'; i++) await new Promise((r) => setTimeout(r, 20));
      expect(state()).toBe('Z');
      await writeFile(
        file,
        JSON.stringify({
          holder: { user: 'ana@example.org', host: hostname(), pid: zombie, since: 'x' },
          agent: { host: hostname(), pid: zombie, session: 's' },
        }),
      );
      const l = new RepositoryLock(file);
      expect(await l.acquire(holder('bob@example.org'))).toEqual({ tookOver: true });
      await l.release();
    } finally {
      parent.kill('SIGKILL');
    }
  });
});
