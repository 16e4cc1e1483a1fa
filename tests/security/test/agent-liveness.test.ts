/**
 * Lock liveness end to end: the BUILT dsg syncs over the real sshd, is
 * stopped (SIGSTOP: a frozen laptop, a process wedged) while it holds the
 * repository lock, and the agent — which lives on, so the lock would stay
 * live forever — ends the session after its bounded client silence: the
 * transaction is rolled back and the lock released, so the next sync runs.
 * Nothing is timed: the test waits (with a generous hang guard) for the
 * lock to go.
 */
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { requireSsh } from '@dsg/testenv';
import { AGENT, BIN, dsgAsync, ok, posixSshBackend, sandbox, waitFor, write } from '@dsg/reliability';

const ssh = requireSsh();
const HANG_GUARD = 300_000;

describe.skipIf(!ssh)('a stopped dsg does not keep the repository locked (real dsg, real sshd, posix)', () => {
  const cleanups: (() => void)[] = [];
  afterAll(() => {
    for (const c of cleanups.reverse()) c();
  });

  it(
    'dsg stopped mid-sync: the agent ends the session after --client-silence, rolls back, unlocks; the next sync works',
    async () => {
      const sb = sandbox();
      cleanups.push(() => sb.remove());
      // the agent as the project's agent command, with a short client silence (the shell text is fixed; paths quoted)
      const wrapper = path.join(sb.dir, 'agent.sh');
      writeFileSync(
        wrapper,
        [
          '#!/bin/sh',
          `exec ${JSON.stringify(process.execPath)} ${JSON.stringify(AGENT)} "$@" --client-silence 2`,
          '',
        ].join('\n'),
      );
      chmodSync(wrapper, 0o755);
      const b = posixSshBackend(ssh!, { agent: [wrapper] });
      cleanups.push(() => b.destroy());
      const box = sandbox(b.userYaml);
      cleanups.push(() => box.remove());
      const A = path.join(box.dir, 'a');
      write(path.join(A, 'input', 'x.csv'), 'id\n1\n');
      ok(await dsgAsync(A, box.env, ['init', ...b.initArgs('proj'), '--repo-name', 'proj', '-q']), 'init');
      // a file big enough that the sync is still uploading when it is stopped
      const fh = await open(path.join(A, 'input', 'big.bin'), 'w');
      const chunk = Buffer.alloc(1 << 20);
      for (let i = 0; i < 400; i++) {
        chunk.writeUInt32BE(i, 0);
        await fh.write(chunk);
      }
      await fh.close();

      const child = spawn(process.execPath, [BIN, 'sync', '-m', 'big', '-q'], {
        cwd: A,
        env: box.env,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      const exited = new Promise<number | null>((r) => child.once('close', (code) => r(code)));
      const lock = b.lockFile('proj');
      try {
        // Its transaction has begun (a work area exists) while the lock is held: the agent's own
        // recovery at open also takes the lock for a moment, and stopping dsg then proved nothing.
        await waitFor(
          'the sync to begin its transaction under the lock',
          () => existsSync(lock) && b.leftovers('proj').some((l) => l.startsWith('tx/')),
          120_000,
          20,
        );
        child.kill('SIGSTOP');
        // the agent lives on; only its watch on the silent client can free the lock
        await waitFor(
          'the agent to end the silent session and release the lock',
          () => !existsSync(lock),
          120_000,
          100,
        );
        expect(b.leftovers('proj')).toEqual([]);
        expect(b.snapshots('proj')).toEqual(['s1']);
      } finally {
        child.kill('SIGCONT');
      }
      const code = await exited;
      expect(code).not.toBe(0);
      expect(stderr).toMatch(/the client sent nothing for 2\.0 s|agent closed/);
      // the repository is free: the same sync now goes through
      ok(await dsgAsync(A, box.env, ['sync', '-m', 'big again', '-q']), 'sync after');
      expect(b.snapshots('proj')).toEqual(['s1', 's2']);
    },
    HANG_GUARD,
  );
});
