import { SshTransport } from '@dsg/transports';
import type { RepositoryConfig } from './config/project.js';
import type { UserConfig } from './config/user.js';

/**
 * The SSH transport for a repository on another host: host (alias ok, via
 * ~/.ssh/config or user ssh.config_file), optional port/user from the
 * project config, key and known_hosts from the user config.
 */
export function sshTransport(repo: RepositoryConfig, user: UserConfig | null, agentCommand: string[]): Promise<SshTransport> {
  const ssh = user?.ssh;
  return Promise.resolve(
    new SshTransport({
      host: repo.host ?? 'localhost',
      ...(repo.port !== undefined ? { port: repo.port } : {}),
      ...(repo.user !== undefined ? { user: repo.user } : {}),
      ...(ssh?.key_path ? { identityFile: ssh.key_path } : {}),
      ...(ssh?.known_hosts ? { knownHostsFile: ssh.known_hosts } : {}),
      ...(ssh?.config_file ? { sshConfigFile: ssh.config_file } : {}),
      agentCommand,
      connectTimeoutMs: 15_000,
    }),
  );
}
