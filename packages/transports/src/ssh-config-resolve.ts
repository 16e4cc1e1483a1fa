import { homedir, userInfo } from 'node:os';
import { join } from 'node:path';
import { ConfigError, DsgError } from '@dsg/contracts';
import { computeSshConfig } from './ssh-config-include.js';

export interface ResolvedSshTarget {
  /** what the user wrote (alias or host) */
  alias: string;
  hostName: string;
  port: number;
  user: string;
  identityFiles: string[];
  identitiesOnly: boolean;
  knownHostsFile: string;
  proxyJump: string | null;
  /** ProxyCommand as written (tokens not expanded), null for none */
  proxyCommand: string | null;
  connectTimeoutMs: number | null;
  /** the ssh_config file read ('' when none) */
  configFile: string;
}

export interface SshTargetOptions {
  host: string;
  port?: number;
  user?: string;
  identityFile?: string;
  knownHostsFile?: string;
  /** default ~/.ssh/config; a missing file means no config */
  sshConfigFile?: string;
}

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

function expand(p: string, o: { host: string; user: string; port: number }): string {
  const home = homedir();
  let s = p.replace(/^~(?=\/|$)/, home);
  s = s.replace(/%([%dhupr])/g, (_, c: string) =>
    c === '%'
      ? '%'
      : c === 'd'
        ? home
        : c === 'h'
          ? o.host
          : c === 'u'
            ? userInfo().username
            : c === 'p'
              ? String(o.port)
              : o.user,
  );
  return s;
}

/**
 * Host aliases, HostName, User, Port, IdentityFile, IdentitiesOnly,
 * UserKnownHostsFile, ConnectTimeout, ProxyJump and ProxyCommand from
 * ssh_config, with Include followed; keywords are case-insensitive, as in
 * OpenSSH. Options dsg cannot honour and must not silently drop are refused.
 */
export function resolveSshTarget(options: SshTargetOptions): ResolvedSshTarget {
  if (!/^[A-Za-z0-9_.:%@[\]-]{1,255}$/.test(options.host) || options.host.startsWith('-')) {
    throw new ConfigError(
      `refused ssh host ${JSON.stringify(options.host.slice(0, 80))}`,
      { field: 'host' },
      { recoveryHint: 'Use a host name, address or ~/.ssh/config alias.' },
    );
  }
  const file = options.sshConfigFile ?? join(homedir(), '.ssh', 'config');
  let computed: Record<string, string | string[]> = {};
  let command: string | undefined;
  try {
    ({ options: computed, proxyCommand: command } = computeSshConfig(file, options.host));
  } catch (e) {
    if (e instanceof DsgError) throw e;
    throw new ConfigError(`cannot read ssh config ${file}: ${(e as Error).message}`, { file }, { cause: e });
  }
  const get = (k: string): string | undefined => first(computed[k.toLowerCase()]);
  const hostName = get('HostName') ?? options.host;
  const portRaw = options.port ?? Number(get('Port') ?? 22);
  if (!Number.isInteger(portRaw) || portRaw < 1 || portRaw > 65535) {
    throw new ConfigError(`invalid ssh port ${String(portRaw)} for ${options.host}`, { file, field: 'Port' });
  }
  const user = options.user ?? get('User') ?? userInfo().username;
  const ctx = { host: hostName, user, port: portRaw };
  const idRaw = computed['identityfile'];
  const fromConfig = (Array.isArray(idRaw) ? idRaw : idRaw ? [idRaw] : []).map((p) => expand(p, ctx));
  const identityFiles = [...(options.identityFile ? [expand(options.identityFile, ctx)] : []), ...fromConfig];
  const known = get('UserKnownHostsFile')?.split(/\s+/)[0];
  const timeout = get('ConnectTimeout');
  const jump = get('ProxyJump');
  const proxyJump = jump && jump.toLowerCase() !== 'none' ? jump : null;
  const proxyCommand = command && command.toLowerCase() !== 'none' ? command : null;
  if (proxyCommand && proxyJump) {
    throw new ConfigError(
      `both ProxyCommand and ProxyJump apply to ${options.host} in ${file}; dsg will not guess which one OpenSSH would use`,
      { file, field: 'ProxyCommand' },
      {
        recoveryHint: `Keep one of them for ${options.host} (OpenSSH uses whichever comes first), e.g. \`ProxyJump none\` or \`ProxyCommand none\` in a Host block that matches it first.`,
      },
    );
  }
  if (proxyCommand && (get('ProxyUseFdpass') ?? 'no').toLowerCase() === 'yes') {
    throw new ConfigError(
      `ProxyUseFdpass is set for ${options.host} in ${file}, which dsg does not support`,
      { file, field: 'ProxyUseFdpass' },
      {
        recoveryHint:
          'Use a ProxyCommand that relays the connection on its stdin/stdout (e.g. ssh -W %h:%p jumphost), or ProxyJump.',
      },
    );
  }
  return {
    alias: options.host,
    hostName,
    port: portRaw,
    user,
    identityFiles,
    identitiesOnly: (get('IdentitiesOnly') ?? 'no').toLowerCase() === 'yes',
    knownHostsFile: options.knownHostsFile ?? (known ? expand(known, ctx) : join(homedir(), '.ssh', 'known_hosts')),
    proxyJump,
    proxyCommand,
    connectTimeoutMs: timeout ? Number(timeout) * 1000 : null,
    configFile: file,
  };
}

/**
 * The ProxyCommand line with OpenSSH's tokens expanded: %h (the host name
 * after HostName), %p (port), %r (remote user), %n (the host as given), %%.
 * The values are refused if they hold anything but letters, digits and
 * `_ . : @ + -` — the line is run by a shell, and an alias or user name
 * can come from a project's settings, not only from ~/.ssh/config (OpenSSH
 * 9.6 added the same check, CVE-2023-51385). Any other token is refused.
 */
export function expandProxyCommand(
  t: Pick<ResolvedSshTarget, 'alias' | 'hostName' | 'port' | 'user' | 'proxyCommand' | 'configFile'>,
): string {
  const cmd = t.proxyCommand ?? '';
  return cmd.replace(/%(.?)/g, (_, c: string) => {
    if (c === '%') return '%';
    const v = c === 'h' ? t.hostName : c === 'p' ? String(t.port) : c === 'r' ? t.user : c === 'n' ? t.alias : null;
    if (v === null) {
      throw new ConfigError(
        `ProxyCommand for ${t.alias} uses %${c}, which dsg does not expand (only %h %p %r %n %%)`,
        { file: t.configFile, field: 'ProxyCommand' },
        {
          recoveryHint: 'Rewrite the ProxyCommand with %h, %p, %r, %n or %% only.',
        },
      );
    }
    if (!/^[A-Za-z0-9_.:@+-]+$/.test(v) || v.startsWith('-')) {
      throw new ConfigError(
        `refusing to put ${JSON.stringify(v.slice(0, 80))} (%${c}) into the ProxyCommand for ${t.alias}: it is run by a shell`,
        { file: t.configFile, field: 'ProxyCommand' },
        {
          recoveryHint: 'Use a host name and user made of letters, digits and _ . : @ + - only.',
        },
      );
    }
    return v;
  });
}

/** ~/.ssh/id_* in OpenSSH's order, when nothing else is configured. */
export function defaultIdentityFiles(): string[] {
  return ['id_ed25519', 'id_ecdsa', 'id_rsa'].map((n) => join(homedir(), '.ssh', n));
}
