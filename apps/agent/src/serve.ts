import { isAbsolute, resolve } from 'node:path';
import { ConfigError, REPOSITORY_NAME_HINT, type HasherFactory, type RepositoryHost } from '@dsg/contracts';
import { posixHost, posixLayoutAt } from '@dsg/posix-ops';
import {
  AgentServer,
  assertRepoName,
  type AgentServerOptions,
  type AgentTarget,
  type RepositoryProbes,
} from '@dsg/transports/server';
import { createZfsRunner, datasetMountedAt, zfsHost } from '@dsg/zfs-ops';
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

/** Where the repositories are (the `serve` target flags, @dsg/transports AgentTarget) and the restrictions. */
export type AgentConfig = AgentRestrictions & AgentTarget;

function restrictions(
  config: AgentRestrictions,
): Pick<AgentServerOptions, 'restrictToRepository' | 'readOnly' | 'clientSilenceMs'> {
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
      throw new ConfigError(
        `--restrict-to-repository ${JSON.stringify(config.restrictToRepository)} is not a repository name`,
        { field: 'restrictToRepository' },
        {
          recoveryHint: REPOSITORY_NAME_HINT,
        },
      );
    }
  }
  if (config.readOnly) out.readOnly = true;
  return out;
}

/**
 * The repositories a config names: the one place the agent maps a
 * repository type to its host (backend, lock file, listing: see
 * RepositoryHost of @dsg/contracts).
 */
export function agentHost(config: AgentConfig, hasher: HasherFactory): RepositoryHost {
  if (config.type !== 'zfs') {
    if (!config.root || !isAbsolute(config.root))
      throw new ConfigError('--root must be an absolute directory', { field: 'root' });
    // xfs: a new repository is made flat; an existing one of either layout opens as what it is
    return posixHost({ root: resolve(config.root), hasher, preferFlat: config.type === 'xfs' });
  }
  if (!config.pool) throw new ConfigError('--pool (the parent dataset) is required for --type zfs', { field: 'pool' });
  if (!config.mountpoint || !isAbsolute(config.mountpoint))
    throw new ConfigError('--mountpoint must be an absolute path', { field: 'mountpoint' });
  return zfsHost({
    parent: config.pool,
    mountpoint: resolve(config.mountpoint),
    hasher,
    runner: createZfsRunner({ sudo: config.sudo ?? false }),
  });
}

/** What `detectRepository` asks of this host: ZFS first (a dataset's mountpoint), then dsg's posix layouts. */
export const REPOSITORY_PROBES: RepositoryProbes = {
  zfsDatasetAt: (dir, { sudo }) => datasetMountedAt(dir, { sudo }),
  posixLayoutAt,
};

/** Wires one repository root (posix dir, or zfs parent dataset + mountpoint) into an AgentServer. */
export function createAgentServer(
  config: AgentConfig,
  hasher: HasherFactory,
  log: (line: string) => void,
): AgentServer {
  return new AgentServer({
    host: agentHost(config, hasher),
    hasher,
    log,
    agentVersion: VERSION,
    detect: { root: resolve(config.type === 'zfs' ? config.mountpoint : config.root), probes: REPOSITORY_PROBES },
    ...restrictions(config),
  });
}
