import { existsSync, readFileSync } from 'node:fs';
import { homedir, userInfo } from 'node:os';
import { join } from 'node:path';
import SSHConfig from 'ssh-config';
import { ConfigError } from '@dsg/contracts';

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
  connectTimeoutMs: number | null;
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
    c === '%' ? '%' : c === 'd' ? home : c === 'h' ? o.host : c === 'u' ? userInfo().username : c === 'p' ? String(o.port) : o.user,
  );
  return s;
}

/** Host aliases, HostName, User, Port, IdentityFile, IdentitiesOnly, UserKnownHostsFile, ProxyJump from ssh_config. */
export function resolveSshTarget(o: SshTargetOptions): ResolvedSshTarget {
  if (!/^[A-Za-z0-9_.:%@[\]-]{1,255}$/.test(o.host) || o.host.startsWith('-')) {
    throw new ConfigError(`refused ssh host ${JSON.stringify(o.host.slice(0, 80))}`, { field: 'host' }, { recoveryHint: 'Use a host name, address or ~/.ssh/config alias.' });
  }
  const file = o.sshConfigFile ?? join(homedir(), '.ssh', 'config');
  let computed: Record<string, string | string[]> = {};
  if (existsSync(file)) {
    try {
      computed = SSHConfig.parse(readFileSync(file, 'utf8')).compute(o.host);
    } catch (e) {
      throw new ConfigError(`cannot read ssh config ${file}: ${(e as Error).message}`, { file }, { cause: e });
    }
  }
  const hostName = first(computed['HostName']) ?? o.host;
  const portRaw = o.port ?? Number(first(computed['Port']) ?? 22);
  if (!Number.isInteger(portRaw) || portRaw < 1 || portRaw > 65535) {
    throw new ConfigError(`invalid ssh port ${String(portRaw)} for ${o.host}`, { file, field: 'Port' });
  }
  const user = o.user ?? first(computed['User']) ?? userInfo().username;
  const ctx = { host: hostName, user, port: portRaw };
  const idRaw = computed['IdentityFile'];
  const fromConfig = (Array.isArray(idRaw) ? idRaw : idRaw ? [idRaw] : []).map((p) => expand(p, ctx));
  const identityFiles = [...(o.identityFile ? [expand(o.identityFile, ctx)] : []), ...fromConfig];
  const known = first(computed['UserKnownHostsFile'])?.split(/\s+/)[0];
  const timeout = first(computed['ConnectTimeout']);
  const jump = first(computed['ProxyJump']);
  return {
    alias: o.host,
    hostName,
    port: portRaw,
    user,
    identityFiles,
    identitiesOnly: (first(computed['IdentitiesOnly']) ?? 'no').toLowerCase() === 'yes',
    knownHostsFile: o.knownHostsFile ?? (known ? expand(known, ctx) : join(homedir(), '.ssh', 'known_hosts')),
    proxyJump: jump && jump.toLowerCase() !== 'none' ? jump : null,
    connectTimeoutMs: timeout ? Number(timeout) * 1000 : null,
  };
}

/** ~/.ssh/id_* in OpenSSH's order, when nothing else is configured. */
export function defaultIdentityFiles(): string[] {
  return ['id_ed25519', 'id_ecdsa', 'id_rsa'].map((n) => join(homedir(), '.ssh', n));
}
