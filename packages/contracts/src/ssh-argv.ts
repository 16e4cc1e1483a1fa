import { ValidationError } from './errors.js';

/** How a tool reaches another host over the system's ssh: what --ssh-port, --ssh-key and --ssh-option gave. */
export interface SshOptions {
  port?: number;
  key?: string;
  options?: string[];
}

/**
 * ssh's argv before the destination: batch mode (never a prompt), then the
 * port (1–65535, else a ValidationError), the key and the options, in that
 * order. The one builder of it; each caller first holds the key and options
 * to what its consumer can carry (rsync's -e, syncoid's shell lines).
 */
export function sshArgv(ssh: SshOptions = {}): string[] {
  const args = ['-o', 'BatchMode=yes'];
  if (ssh.port !== undefined) {
    if (!Number.isInteger(ssh.port) || ssh.port < 1 || ssh.port > 65535)
      throw new ValidationError(`refused ssh port ${String(ssh.port)}`, { field: 'sshPort' });
    args.push('-p', String(ssh.port));
  }
  if (ssh.key !== undefined) args.push('-i', ssh.key);
  for (const o of ssh.options ?? []) args.push('-o', o);
  return args;
}
