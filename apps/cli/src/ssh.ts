import { ConfigError } from '@dsg/contracts';
import { SshTransport } from '@dsg/transports';
import type { RepositoryConfig } from './config/project.js';
import { hostSettings, type UserConfig } from './config/user.js';

/**
 * The SSH transport for a repository on another host: host (alias ok, via
 * ~/.ssh/config or user ssh.config_file), optional port/user from the
 * project config, key and known_hosts from the user config.
 */
export function sshTransport(
  repo: RepositoryConfig,
  user: UserConfig | null,
  agentCommand: string[],
): Promise<SshTransport> {
  const ssh = user?.ssh;
  const keyPath = hostSettings(user, repo.host)?.key_path ?? ssh?.key_path;
  return Promise.resolve(
    new SshTransport({
      host: repo.host ?? 'localhost',
      ...(repo.port !== undefined ? { port: repo.port } : {}),
      ...(repo.user !== undefined ? { user: repo.user } : {}),
      ...(keyPath ? { identityFile: keyPath } : {}),
      ...(ssh?.known_hosts ? { knownHostsFile: ssh.known_hosts } : {}),
      ...(ssh?.config_file ? { sshConfigFile: ssh.config_file } : {}),
      agentCommand,
      connectTimeoutMs: 15_000,
    }),
  );
}

/** A stalled agent (stopped, wedged) is given up on after this long without a frame or PING from it. */
export const DEFAULT_AGENT_TIMEOUT_S = 60;

/**
 * The agent idle timeout in ms: $DSG_AGENT_TIMEOUT (seconds), else the user
 * config's ssh.agent_timeout, else 60 s; 0 waits forever.
 */
export function agentIdleTimeoutMs(user: UserConfig | null, env: NodeJS.ProcessEnv = process.env): number {
  const raw = env['DSG_AGENT_TIMEOUT'];
  if (raw !== undefined && raw !== '') {
    const s = Number(raw);
    if (!Number.isFinite(s) || s < 0) {
      throw new ConfigError(
        `DSG_AGENT_TIMEOUT=${JSON.stringify(raw)} is not a number of seconds`,
        { field: 'DSG_AGENT_TIMEOUT' },
        {
          recoveryHint: 'Set DSG_AGENT_TIMEOUT to the seconds to wait for a silent agent (0 = forever), or unset it.',
        },
      );
    }
    return Math.round(s * 1000);
  }
  return Math.round((user?.ssh?.agent_timeout ?? DEFAULT_AGENT_TIMEOUT_S) * 1000);
}
