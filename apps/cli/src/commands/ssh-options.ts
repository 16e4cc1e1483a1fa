import { agentArgv, AgentCommandError } from '../config/agent-command.js';
import { UsageError } from '../output/errors.js';

/** The SSH options init, clone and list-repos share: how this person reaches the host. */
export interface SshOptions {
  port?: string;
  sshUser?: string;
  agent?: string[];
  /** zfs: the agent runs `sudo -n zfs` (it logs in as a user other than root) */
  sudo?: boolean;
}

/** `sudo: true` for a zfs repository given --sudo; a posix one has no use for it (its files are the login's own). */
export function sudoField(type: 'zfs' | 'posix', o: SshOptions): { sudo?: true } {
  if (!o.sudo) return {};
  if (type !== 'zfs')
    throw new UsageError(
      '--sudo is for zfs repositories (the agent runs `sudo -n zfs`); a posix repository needs none',
    );
  return { sudo: true };
}

/**
 * --port/--ssh-user/--agent as repository config fields. One --agent is a command line
 * (split as the config's `agent:` string is); several are taken word for word.
 */
export function sshFields(o: SshOptions): { port?: number; user?: string; agent?: string[] } {
  const out: { port?: number; user?: string; agent?: string[] } = {};
  if (o.port !== undefined) {
    const n = Number(o.port);
    if (!Number.isInteger(n) || n < 1 || n > 65535)
      throw new UsageError(`--port expects a port number, got ${JSON.stringify(o.port)}`);
    out.port = n;
  }
  if (o.sshUser) out.user = o.sshUser;
  if (o.agent?.length) {
    try {
      out.agent = agentArgv(o.agent.length === 1 ? o.agent[0]! : o.agent);
    } catch (e) {
      if (e instanceof AgentCommandError) throw new UsageError(`--agent: ${e.message}`);
      throw e;
    }
  }
  return out;
}
