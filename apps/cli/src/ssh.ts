import { TransportError, type Transport } from '@dsg/contracts';
import type { ChannelTransport } from '@dsg/transports';
import type { RepositoryConfig } from './config/project.js';
import type { UserConfig } from './config/user.js';

/** The SSH transport for a repository on another host (wired when @dsg/transports ships SshTransport). */
export function sshTransport(repo: RepositoryConfig, _user: UserConfig | null, _agent: string[]): Promise<ChannelTransport & Transport> {
  return Promise.reject(
    new TransportError(`cannot reach ${repo.host ?? '?'}: this build has no SSH transport yet`, {
      recoveryHint: 'Use a repository on localhost for now (repository.host: localhost).',
    }),
  );
}
