import { join, isAbsolute, resolve } from 'node:path';
import { ConfigError, type HasherFactory } from '@dsg/contracts';
import { listPosixAndFlatRepositories, openPosixRepository, posixLockFile } from '@dsg/posix-ops';
import { AgentServer, assertRepoName, type AgentServerOptions } from '@dsg/transports/server';
import { ZfsRemoteFilesystem, createZfsRunner, listZfsRepositories } from '@dsg/zfs-ops';
import { VERSION } from './version.js';

/** What an administrator can lock an agent down to (for a forced command in authorized_keys). */
export interface AgentRestrictions {
  /** serve this one repository name only (`--restrict-to-repository`) */
  restrictToRepository?: string;
  /** refuse every change: lock, begin, write, delete, commit, … (`--read-only`) */
  readOnly?: boolean;
  /** end a session whose client (one that PINGs) sent nothing for this long, ms; 0 = never (`--client-silence`) */
  clientSilenceMs?: number;
}

export type AgentConfig = AgentRestrictions &
  ({ /** xfs: the original dsg's flat repositories (a new one is made flat); posix opens an existing flat one too */ type: 'posix' | 'xfs'; root: string } | { type: 'zfs'; pool: string; mountpoint: string; /** run zfs as `sudo -n zfs` (a non-root agent) */ sudo?: boolean });

function restrictions(config: AgentRestrictions): Pick<AgentServerOptions, 'restrictToRepository' | 'readOnly' | 'clientSilenceMs'> {
  const out: Pick<AgentServerOptions, 'restrictToRepository' | 'readOnly' | 'clientSilenceMs'> = {};
  if (config.clientSilenceMs !== undefined) {
    if (!Number.isFinite(config.clientSilenceMs) || config.clientSilenceMs < 0) {
      throw new ConfigError('--client-silence must be a number of seconds (0: never)', { field: 'clientSilence' });
    }
    out.clientSilenceMs = config.clientSilenceMs;
  }
  if (config.restrictToRepository !== undefined) {
    try {
      out.restrictToRepository = assertRepoName(config.restrictToRepository);
    } catch {
      throw new ConfigError(`--restrict-to-repository ${JSON.stringify(config.restrictToRepository)} is not a repository name`, { field: 'restrictToRepository' }, {
        recoveryHint: 'A repository name is letters, digits, ".", "_" and "-", starting with a letter or digit.',
      });
    }
  }
  if (config.readOnly) out.readOnly = true;
  return out;
}

/** Wires one repository root (posix dir, or zfs parent dataset + mountpoint) into an AgentServer. */
export function createAgentServer(config: AgentConfig, hasher: HasherFactory, log: (line: string) => void): AgentServer {
  if (config.type !== 'zfs') {
    if (!config.root || !isAbsolute(config.root)) throw new ConfigError('--root must be an absolute directory', { field: 'root' });
    const root = resolve(config.root);
    const preferFlat = config.type === 'xfs';
    return new AgentServer({
      // a repository with .dsg/last-sync.json at its top and no `current` is the original's flat tree
      openRepository: (name) => openPosixRepository(join(root, name), { hasher, preferFlat }),
      lockFile: (name) => posixLockFile(join(root, name), { preferFlat }),
      listRepositories: () => listPosixAndFlatRepositories(root),
      hasher,
      log,
      agentVersion: VERSION,
      ...restrictions(config),
    });
  }
  if (!config.pool) throw new ConfigError('--pool (the parent dataset) is required for --type zfs', { field: 'pool' });
  if (!config.mountpoint || !isAbsolute(config.mountpoint)) throw new ConfigError('--mountpoint must be an absolute path', { field: 'mountpoint' });
  const mountpoint = resolve(config.mountpoint);
  const runner = createZfsRunner({ sudo: config.sudo ?? false });
  return new AgentServer({
    openRepository: (name) => new ZfsRemoteFilesystem({ parent: config.pool, repo: name, mountpoint, hasher, runner }),
    lockFile: (name) => join(mountpoint, `.${name}.dsg-lock`),
    listRepositories: () => listZfsRepositories({ parent: config.pool, mountpoint, runner }),
    hasher,
    log,
    agentVersion: VERSION,
    ...restrictions(config),
  });
}
