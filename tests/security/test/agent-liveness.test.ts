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
import { chmodSync, existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { requireSsh } from '@dsg/testenv';
import { AGENT, BIN, dsgAsync, ok, posixSshBackend, sandbox, waitFor, write } from '@dsg/reliability';

const ssh = requireSsh();
// each step has its own guard, well inside the test's, so a hang names its step
const STEP_GUARD = 90_000;
const HANG_GUARD = 600_000;

/** Bytes in the upload temporaries (`.dsg-tmp-*`) under a posix repository's tx/ so far. */
function uploadedSoFar(txDir: string): number {
  let n = 0;
  try {
    for (const e of readdirSync(txDir, { recursive: true, withFileTypes: true }))
      if (e.isFile() && e.name.startsWith('.dsg-tmp-')) n += statSync(path.join(e.parentPath, e.name)).size;
  } catch {
    /* tx/ not there yet, or a temporary renamed meanwhile */
  }
  return n;
}

/** `p`, or a failure naming what hung once `ms` passed (`onHang` says what and cleans up). */
function withGuard<T>(p: Promise<T>, ms: number, onHang: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(onHang())), ms);
  });
  return Promise.race([p, hang]).finally(() => clearTimeout(timer));
}

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
      ok(await dsgAsync(A, box.env, ['init', ...b.initArgs('proj'), '--repo-name', 'proj', '-q'], STEP_GUARD), 'init');
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
        // Stopped while big.bin is streaming into the transaction's work area under the lock (the
        // agent's own recovery at open also takes the lock for a moment, and stopping dsg then proved
        // nothing). Mid-upload is the hard case: dsg then waits on the SSH window, and it used to
        // wait there forever once the agent had ended the session.
        await waitFor(
          'the sync to be uploading big.bin in its transaction under the lock',
          () => existsSync(lock) && uploadedSoFar(path.join(b.root, 'proj', 'tx')) >= 4 << 20,
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
      const code = await withGuard(exited, 120_000, () => {
        child.kill('SIGKILL');
        return `the continued dsg did not exit; its stderr so far: ${stderr}`;
      });
      expect(code).not.toBe(0);
      expect(stderr).toMatch(/the client sent nothing for 2\.0 s|agent closed/);
      // the repository is free: the same sync now goes through
      ok(await dsgAsync(A, box.env, ['sync', '-m', 'big again', '-q'], STEP_GUARD), 'sync after');
      expect(b.snapshots('proj')).toEqual(['s1', 's2']);
    },
    HANG_GUARD,
  );
});
