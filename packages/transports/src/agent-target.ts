/**
 * Where `dsg-agent serve` finds the repositories, as its command line says
 * it: one table for the CLI, which writes the flags (agentTargetArgv), and
 * the agent, which declares and reads them (agentTargetOf).
 */

/** The repository types `dsg-agent serve --type` takes (xfs: the original dsg's flat trees). */
export const AGENT_REPOSITORY_TYPES = ['posix', 'xfs', 'zfs'] as const;
export type AgentRepositoryType = (typeof AGENT_REPOSITORY_TYPES)[number];

export type AgentTarget =
  | { type: 'posix' | 'xfs'; /** the directory holding the repositories (`<root>/<name>`) */ root: string }
  | {
      type: 'zfs';
      /** the parent dataset */ pool: string;
      mountpoint: string;
      /** run zfs as `sudo -n zfs` */ sudo?: boolean;
    };

interface TargetFlag {
  readonly flag: string;
  /** the value's name for help; absent: a switch */
  readonly value?: string;
  readonly types: readonly AgentRepositoryType[];
  readonly description: string;
}

/** The target flags after `--type`, in the order they are written. */
export const AGENT_TARGET_FLAGS = {
  root: {
    flag: '--root',
    value: '<dir>',
    types: ['posix', 'xfs'],
    description: 'posix, xfs: directory holding the repositories (<root>/<name>)',
  },
  pool: {
    flag: '--pool',
    value: '<dataset>',
    types: ['zfs'],
    description: 'zfs: parent dataset P (repositories are P/<name>)',
  },
  mountpoint: { flag: '--mountpoint', value: '<dir>', types: ['zfs'], description: 'zfs: where P is mounted' },
  sudo: {
    flag: '--sudo',
    types: ['zfs'],
    description: 'zfs: run zfs as `sudo -n zfs` (agent running as a normal user)',
  },
} as const satisfies Record<string, TargetFlag>;

export type AgentTargetOptions = { type: AgentRepositoryType } & {
  [K in keyof typeof AGENT_TARGET_FLAGS]?: (typeof AGENT_TARGET_FLAGS)[K] extends { value: string } ? string : boolean;
};

/** `--type T` and the target's flags, e.g. `--type zfs --pool tank/dsg --mountpoint /var/repos/dsg --sudo`. */
export function agentTargetArgv(target: AgentTarget): string[] {
  const out = ['--type', target.type];
  const values = target as Partial<Record<string, string | boolean>>;
  for (const [key, f] of Object.entries(AGENT_TARGET_FLAGS) as [string, TargetFlag][]) {
    if (!f.types.includes(target.type)) continue;
    const v = values[key];
    if (f.value === undefined) {
      if (v === true) out.push(f.flag);
    } else out.push(f.flag, String(v ?? ''));
  }
  return out;
}

/** The target the parsed flags name (a missing value is '': the host refuses it with the flag's name). */
export function agentTargetOf(options: AgentTargetOptions): AgentTarget {
  return options.type !== 'zfs'
    ? { type: options.type, root: options.root ?? '' }
    : { type: 'zfs', pool: options.pool ?? '', mountpoint: options.mountpoint ?? '', sudo: options.sudo ?? false };
}
