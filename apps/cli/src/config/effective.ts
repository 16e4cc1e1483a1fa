import { isDeepStrictEqual } from 'node:util';
import { DEFAULT_AGENT_TIMEOUT_S } from '../ssh.js';
import { LOCAL_CONFIG_FILE, PROJECT_CONFIG_FILE, repositoryYaml, type LoadedProject } from './project.js';
import { hostSettings, type LoadedUser } from './user.js';

/**
 * Where a setting can come from, highest precedence first. Flags (init,
 * clone, list-repos: --port, --ssh-user, --agent, --sudo) win over all;
 * init and clone write them into .dsg/config.local.yml.
 */
export const SOURCES = ['flag', 'env', 'local', 'user-host', 'user', 'shared', 'default'] as const;
export type SettingSource = (typeof SOURCES)[number];

export const SOURCE_LABELS: Record<SettingSource, string> = {
  flag: 'flag',
  env: 'environment',
  local: LOCAL_CONFIG_FILE,
  'user-host': 'user config hosts:',
  user: 'user config',
  shared: PROJECT_CONFIG_FILE,
  default: 'default',
};

export interface SettingValue {
  value: unknown;
  source: SettingSource;
  /** the file (or variable) it was read from; null for defaults */
  from: string | null;
  /** why a value that is set was not used (only on shadowed values) */
  note?: string;
}

/** One effective setting: the value used, and the values set at lower precedence that it shadows. */
export interface EffectiveSetting extends SettingValue {
  key: string;
  shadowed: SettingValue[];
}

/** Values for one key, any order; the first of the highest precedence is used, the others are shadowed. */
function pick(key: string, candidates: (SettingValue | null)[]): EffectiveSetting {
  const set = candidates
    .filter((c): c is SettingValue => c !== null && c.value !== undefined)
    .sort((a, b) => SOURCES.indexOf(a.source) - SOURCES.indexOf(b.source));
  const [used, ...rest] = set;
  const win = used ?? { value: null, source: 'default' as const, from: null };
  // what a line shows under the value: other values that are set and lost (not defaults, not the same value again)
  const shadowed = rest.filter((r) => r.source !== 'default' && !isDeepStrictEqual(r.value, win.value));
  return { key, ...win, shadowed };
}

/**
 * Every setting a command run here would use, with where it came from, as
 * loadProjectConfig, withHostSettings, sshTransport and agentIdleTimeoutMs
 * combine them. The connection (name, repository.*) comes from the local
 * file once there is one; .dsgconfig.yml's connection is then ignored, and
 * its agent command is never used.
 */
export function effectiveSettings(
  project: LoadedProject | null,
  user: LoadedUser | null,
  env: NodeJS.ProcessEnv,
): EffectiveSetting[] {
  const out: EffectiveSetting[] = [];
  const u = user?.config ?? null;
  const uFile = user?.file ?? null;
  if (project) {
    const local = project.connection.local;
    const localFile = project.connection.file;
    const sharedFile = project.file;
    const sharedRepo = repositoryYaml(project.shared.repository);
    const localRepo = local ? repositoryYaml(local.repository) : null;
    const sharedNote = local ? `ignored: connection settings come from ${LOCAL_CONFIG_FILE}` : undefined;
    const fromShared = (key: string, value: unknown): SettingValue => ({
      value,
      source: 'shared',
      from: sharedFile,
      ...(sharedNote ? { note: sharedNote } : {}),
    });
    const fromLocal = (value: unknown): SettingValue | null =>
      localRepo ? { value, source: 'local', from: localFile } : null;
    out.push(
      pick('name', [
        local ? { value: local.name, source: 'local', from: localFile } : null,
        fromShared('name', project.shared.name),
      ]),
    );
    const repoKeys = [...new Set([...Object.keys(localRepo ?? {}), ...Object.keys(sharedRepo)])].filter(
      (k) => !['port', 'user', 'agent', 'sudo'].includes(k),
    );
    for (const k of ['type', 'host', 'pool', 'mountpoint', 'root'].filter((x) => repoKeys.includes(x)))
      out.push(pick(`repository.${k}`, [fromLocal(localRepo?.[k]), fromShared(k, sharedRepo[k])]));
    const host = project.config.repository.host;
    const h = hostSettings(u, host);
    const hostFrom = uFile ? `${uFile} (hosts: ${host ?? 'localhost'})` : null;
    const personal: [string, unknown][] = [
      ['port', '(ssh_config, else 22)'],
      ['user', '(ssh_config, else your login)'],
      ['agent', ['dsg-agent']],
      ...(project.config.repository.type === 'zfs' ? ([['sudo', false]] as [string, unknown][]) : []),
    ];
    for (const [k, dflt] of personal) {
      const shared = sharedRepo[k];
      const sharedValue: SettingValue | null =
        shared === undefined
          ? null
          : k === 'agent'
            ? {
                value: shared,
                source: 'shared',
                from: sharedFile,
                note: `ignored: an agent command is never taken from ${PROJECT_CONFIG_FILE}`,
              }
            : fromShared(k, shared);
      const s = pick(`repository.${k}`, [
        fromLocal(localRepo?.[k]),
        h ? { value: (h as Record<string, unknown>)[k], source: 'user-host', from: hostFrom } : null,
        sharedValue?.note ? null : sharedValue,
        { value: dflt, source: 'default', from: null },
      ]);
      if (sharedValue?.note) s.shadowed.push(sharedValue);
      out.push(s);
    }
    out.push(
      pick('ssh.key_path', [
        h?.key_path !== undefined ? { value: h.key_path, source: 'user-host', from: hostFrom } : null,
        u?.ssh?.key_path !== undefined ? { value: u.ssh.key_path, source: 'user', from: uFile } : null,
        { value: '(ssh-agent, ~/.ssh/config, ~/.ssh/id_*)', source: 'default', from: null },
      ]),
    );
    const raw = project.raw;
    const rawIgnore = (raw['ignore'] ?? {}) as Record<string, unknown>;
    const scope = (key: string, value: unknown, given: boolean, dflt: unknown): EffectiveSetting =>
      pick(key, [
        given ? { value, source: 'shared', from: sharedFile } : null,
        { value: dflt, source: 'default', from: null },
      ]);
    out.push(scope('data_dirs', project.shared.data_dirs, raw['data_dirs'] !== undefined, project.shared.data_dirs));
    for (const k of ['names', 'suffixes', 'paths'] as const)
      out.push(scope(`ignore.${k}`, project.shared.ignore[k], rawIgnore[k] !== undefined, project.shared.ignore[k]));
  }
  out.push(pick('user_id', [u ? { value: u.user_id, source: 'user', from: uFile } : null]));
  out.push(
    pick('user_name', [u?.user_name !== undefined ? { value: u.user_name, source: 'user', from: uFile } : null]),
  );
  const envTimeout = env['DSG_AGENT_TIMEOUT'];
  out.push(
    pick('ssh.agent_timeout', [
      envTimeout !== undefined && envTimeout !== ''
        ? { value: Number(envTimeout), source: 'env', from: 'DSG_AGENT_TIMEOUT' }
        : null,
      u?.ssh?.agent_timeout !== undefined ? { value: u.ssh.agent_timeout, source: 'user', from: uFile } : null,
      { value: DEFAULT_AGENT_TIMEOUT_S, source: 'default', from: null },
    ]),
  );
  for (const k of ['known_hosts', 'config_file'] as const)
    out.push(
      pick(`ssh.${k}`, [
        u?.ssh?.[k] !== undefined ? { value: u.ssh[k], source: 'user', from: uFile } : null,
        { value: k === 'known_hosts' ? '~/.ssh/known_hosts' : '~/.ssh/config', source: 'default', from: null },
      ]),
    );
  out.push(
    pick('backup_on_conflict', [
      // true is also the default the schema fills in: only false is known to be set
      u?.backup_on_conflict === false ? { value: false, source: 'user', from: uFile } : null,
      { value: true, source: 'default', from: null },
    ]),
  );
  return out;
}

/** `2222`, `[node, /x.mjs]`, `ana`: a value as a line shows it. */
export function showValue(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map((x) => String(x)).join(', ')}]`;
  if (typeof v === 'string') return v;
  return JSON.stringify(v);
}

/** Where a value was read: the file (a config file, `user config FILE (hosts: H)`), the variable, or `default`. */
export function showSource(s: SettingValue): string {
  if (s.source === 'default' || s.from === null) return SOURCE_LABELS[s.source];
  if (s.source === 'user' || s.source === 'user-host') return `user config ${s.from}`;
  if (s.source === 'env') return `environment ${s.from}`;
  return s.from;
}
