import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sshArgv, type SshOptions } from '@dsg/contracts';

/** How the agent reaches a replica host: what --ssh-port/--ssh-key/--ssh-option gave. */
export type ReplicaSsh = SshOptions;

/** `[user@]host` for ssh, or undefined when the target is on this machine (no host). */
export function sshDestination(t: { user?: string; host?: string }): string | undefined {
  return t.host !== undefined ? `${t.user !== undefined ? `${t.user}@` : ''}${t.host}` : undefined;
}

/**
 * Runs `fn` with ssh settings that share one connection to `dest`: every
 * remote step of a replication run (probes, zfs calls, renames, rsync)
 * goes through a master (ControlMaster) instead of a handshake each, which
 * is most of a small run's time. The socket is in a fresh private
 * directory (mkdtemp, 0700), never a guessable shared path; the master is
 * ended and the directory removed afterwards. The caller's options come
 * first, so theirs win (ssh takes the first value). No host: no master.
 */
export async function withSshMaster<T>(
  dest: string | undefined,
  given: ReplicaSsh,
  fn: (ssh: ReplicaSsh) => Promise<T>,
): Promise<T> {
  if (dest === undefined) return fn(given);
  const dir = await mkdtemp(path.join(tmpdir(), 'dsg-replicate-'));
  const ssh: ReplicaSsh = {
    ...given,
    options: [...(given.options ?? []), 'ControlMaster=auto', `ControlPath=${dir}/ssh`, 'ControlPersist=60'],
  };
  try {
    return await fn(ssh);
  } finally {
    // ends the master this run started (if any); with none ssh says so, and that is fine
    spawnSync('ssh', [...sshArgv(ssh), '-O', 'exit', dest], { stdio: 'ignore' });
    await rm(dir, { recursive: true, force: true });
  }
}
