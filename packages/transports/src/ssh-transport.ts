import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { lookup } from 'node:dns/promises';
import { readFile } from 'node:fs/promises';
import { Duplex, type Readable, type Writable } from 'node:stream';
import type * as Ssh2Module from 'ssh2';
import type { Client, ClientChannel, ConnectConfig } from 'ssh2';
import { TransportError, type Transport } from '@dsg/contracts';
import type { AgentChannel, ChannelTransport } from './client.js';
import { knownHostKeyTypes, orderHostKeyAlgorithms, verifyHostKey } from './known-hosts.js';
import { shellCommand } from './shell-quote.js';
import {
  defaultIdentityFiles,
  expandProxyCommand,
  resolveSshTarget,
  type ResolvedSshTarget,
  type SshTargetOptions,
} from './ssh-config-resolve.js';

/** How many ProxyJump levels (a jump host's own ProxyJump, and so on) are followed before giving up. */
const MAX_JUMP_DEPTH = 8;

type ProxyChild = ChildProcessByStdio<Writable, Readable, Readable>;

/** A running ProxyCommand: its stdio as the SSH socket, and what it said if it failed. */
interface Proxy {
  child: ProxyChild;
  command: string;
  sock: Duplex;
  exited: Promise<void>;
  describe(): string;
}

// ssh2 (with its crypto binding) loads on the first SSH connection only:
// a local repository's `dsg status` was spending ~100 ms loading it. It is
// CommonJS, so under plain node ESM only its default export is reliable.
type Ssh2 = typeof Ssh2Module;
let ssh2Loading: Promise<Ssh2> | undefined;
function loadSsh2(): Promise<Ssh2> {
  return (ssh2Loading ??= import('ssh2').then((m) => (m as unknown as { default: Ssh2 }).default));
}

export interface SshTransportOptions extends SshTargetOptions {
  /** argument vector of the agent on the server, e.g. ['dsg-agent', 'serve', '--type', 'posix', '--root', '/srv/dsg'] */
  agentCommand: string[];
  /** give up connecting after this long (default 20 s, or ssh_config ConnectTimeout) */
  connectTimeoutMs?: number;
  /** keepalive interval (default 5 s); 3 unanswered keepalives drop the connection */
  keepaliveMs?: number;
  keepaliveCountMax?: number;
  /** default: $SSH_AUTH_SOCK; pass null to not use an agent */
  agentSocket?: string | null;
  /** ms end() waits for the agent to finish its cleanup before closing the connection */
  exitTimeoutMs?: number;
}

/**
 * The agent on another host over SSH (ssh2). begin() resolves the target
 * through ssh_config, verifies the host key against known_hosts (never
 * auto-accepting), authenticates (ssh-agent, then key files), and execs the
 * agent command with every argument shell-quoted. A dropped connection ends
 * the channel, so every pending request fails with a TransportError.
 */
export class SshTransport implements Transport, ChannelTransport {
  private conn: Client | null = null;
  private jumps: Client[] = [];
  private proxies: Proxy[] = [];
  private stream: ClientChannel | null = null;
  private ch: AgentChannel | null = null;
  private starting: Promise<void> | null = null;
  private streamClosed: Promise<void> = Promise.resolve();
  /** settles when the connection has closed, whoever closed it (a killed sshd closes it long before end()) */
  private connClosed: Promise<void> = Promise.resolve();
  private stderrTail = '';
  private exitInfo = '';
  private exitCode: number | null = null;
  readonly target: ResolvedSshTarget;

  constructor(private readonly o: SshTransportOptions) {
    this.target = resolveSshTarget(o);
    shellCommand(o.agentCommand); // validate now, not after connecting
  }

  begin(): Promise<void> {
    this.starting ??= this.start().catch(async (e: unknown) => {
      await this.end();
      throw e;
    });
    return this.starting;
  }

  private async authMethods(t: ResolvedSshTarget): Promise<ConnectConfig['authHandler']> {
    const methods: { type: 'agent'; username: string; agent: string }[] = [];
    const sock = this.o.agentSocket === undefined ? process.env['SSH_AUTH_SOCK'] : this.o.agentSocket;
    if (sock && !t.identitiesOnly) methods.push({ type: 'agent', username: t.user, agent: sock });
    const files = t.identityFiles.length ? t.identityFiles : defaultIdentityFiles();
    const keys: { type: 'publickey'; username: string; key: Buffer }[] = [];
    for (const f of files) {
      let data: Buffer;
      try {
        data = await readFile(f);
      } catch {
        continue; // OpenSSH also skips identity files that do not exist
      }
      const parsed = (await loadSsh2()).utils.parseKey(data);
      if (parsed instanceof Error) continue; // encrypted (no passphrase support) or not a key
      keys.push({ type: 'publickey', username: t.user, key: data });
    }
    const all = [...methods, ...keys];
    if (all.length === 0) {
      throw new TransportError(
        `no usable SSH credentials for ${t.user}@${t.alias}: no ssh-agent and no readable unencrypted key (${files.join(', ')})`,
        {
          recoveryHint: 'Start ssh-agent and ssh-add your key, or set IdentityFile in ~/.ssh/config.',
        },
      );
    }
    return all;
  }

  /** One ProxyJump hop spec `[user@]host[:port]`, resolved through the same ssh_config. */
  private resolveHop(hop: string, of: ResolvedSshTarget): ResolvedSshTarget {
    const m = /^(?:([^@]+)@)?(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(hop.trim());
    if (!m)
      throw new TransportError(`cannot parse ProxyJump hop ${JSON.stringify(hop)} for ${of.alias}`, {
        recoveryHint: 'Use [user@]host[:port] hops, separated by commas.',
      });
    const host = m[2]!.replace(/^\[|\]$/g, '');
    return resolveSshTarget({
      host,
      ...(m[3] ? { port: Number(m[3]) } : {}),
      ...(m[1] ? { user: m[1] } : {}),
      ...(this.o.knownHostsFile ? { knownHostsFile: this.o.knownHostsFile } : {}),
      ...(this.o.sshConfigFile ? { sshConfigFile: this.o.sshConfigFile } : {}),
    });
  }

  /**
   * Every host to connect through, first to last, ending with `t`. As in
   * OpenSSH, `ProxyJump a,b` reaches a with a's own settings (its ProxyJump
   * is followed the same way, its ProxyCommand used), then b through a, then
   * the target through b; the later hops' own proxy settings do not apply
   * (OpenSSH passes them -J, which overrides their config).
   */
  private chainTo(t: ResolvedSshTarget, seen: readonly string[] = []): ResolvedSshTarget[] {
    if (!t.proxyJump) return [t];
    const key = t.alias;
    if (seen.includes(key) || seen.length >= MAX_JUMP_DEPTH) {
      throw new TransportError(
        `ProxyJump for ${t.alias} ${seen.includes(key) ? 'leads back to itself' : `is nested more than ${MAX_JUMP_DEPTH} deep`}: ${[...seen, key].join(' → ')}`,
        {
          recoveryHint: `Check the ProxyJump lines in ${t.configFile}.`,
        },
      );
    }
    const hops = t.proxyJump.split(',').map((h) => this.resolveHop(h, t));
    return [...this.chainTo(hops[0]!, [...seen, key]), ...hops.slice(1), t];
  }

  /** How many ProxyJump hops the open connection went through. */
  get hops(): number {
    return this.jumps.length;
  }

  /**
   * Start `t`'s ProxyCommand; its stdin/stdout become the SSH connection.
   * It is run as OpenSSH runs it — `exec <command>` by $SHELL (else /bin/sh)
   * -c — because it is a line of the user's own ssh_config, written for a
   * shell; only the %-tokens are filled in, each checked by
   * expandProxyCommand. Its stderr is kept for the error message.
   */
  private startProxy(t: ResolvedSshTarget): Proxy {
    const command = expandProxyCommand(t);
    const shell = process.env['SHELL'] || '/bin/sh';
    const child = spawn(shell, ['-c', `exec ${command}`], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    let status = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString('utf8')).slice(-1000);
    });
    const exited = new Promise<void>((r) => {
      child.once('exit', (code, signal) => {
        status = signal ? `killed by ${signal}` : `exited with code ${code}`;
        r();
      });
      child.once('error', (e) => {
        status = `could not be started: ${e.message}`;
        r();
      });
    });
    const sock = Duplex.from({ readable: child.stdout, writable: child.stdin });
    sock.on('error', () => {}); // reported through ssh2 and describe()
    const proxy: Proxy = {
      child,
      command,
      sock,
      exited,
      describe: () =>
        `ProxyCommand \`${command}\`${status ? ` ${status}` : ''}${stderr.trim() ? `: ${stderr.trim().split('\n').slice(-3).join(' | ')}` : ''}`,
    };
    this.proxies.push(proxy);
    return proxy;
  }

  private async connectTo(t: ResolvedSshTarget, via?: Duplex | 'proxy-command'): Promise<Client> {
    // a name that does not resolve is the first thing to say, before any word about keys
    if (via === undefined) {
      await lookup(t.hostName).catch((e: unknown) => {
        throw unresolvedHost(t, e) ?? e;
      });
    }
    const authHandler = await this.authMethods(t);
    const conn = new (await loadSsh2()).Client();
    let hostKeyError: TransportError | null = null;
    // known_hosts' key types first, as OpenSSH orders HostKeyAlgorithms: a server with
    // several host keys must show the one we know, not refuse as "changed" on another
    let knownTypes: string[];
    try {
      knownTypes = await knownHostKeyTypes({ file: t.knownHostsFile, host: t.hostName, port: t.port });
    } catch (e) {
      throw new TransportError(`cannot read ${t.knownHostsFile}: ${String(e)}`, { cause: e });
    }
    // started here, just before connect(): ssh2 must be listening before the proxy can fail
    const proxy = via === 'proxy-command' ? this.startProxy(t) : undefined;
    const sock = proxy ? proxy.sock : via === 'proxy-command' ? undefined : via;
    await new Promise<void>((resolve, reject) => {
      let settled = false;
      conn.once('ready', () => {
        settled = true;
        resolve();
      });
      // `on`, not `once`: ssh2 may emit a second error (e.g. "Connection lost before
      // handshake" after the proxy died), and an error without a listener would crash the
      // process. Errors after 'ready' are the session's (start() listens for them).
      conn.on('error', (e: Error) => {
        if (settled) return;
        settled = true;
        conn.destroy();
        const fail = async (): Promise<void> => {
          // a failed proxy says why on its stderr; give it a moment to exit and say it
          if (proxy && !hostKeyError)
            await Promise.race([proxy.exited, new Promise((r) => setTimeout(r, 2000).unref())]);
          const unresolved = !proxy && !sock ? unresolvedHost(t, e) : undefined;
          if (!hostKeyError && unresolved) {
            reject(unresolved);
            return;
          }
          reject(
            hostKeyError ??
              new TransportError(
                `cannot connect to ${t.user}@${t.hostName}:${t.port} (${t.alias}${proxy ? ', through its ProxyCommand' : ''}): ${e.message}${proxy ? `; ${proxy.describe()}` : ''}`,
                {
                  cause: e,
                  recoveryHint: proxy
                    ? `Check the ProxyCommand for ${t.alias} in ${t.configFile}: run it by hand, it must relay the connection on its stdin/stdout.`
                    : /auth/i.test(e.message)
                      ? 'Check the user and key: ssh -v to the same host shows which keys are offered.'
                      : 'Check the host name, port and network; `ssh -v` to the same host shows where it stops.',
                },
              ),
          );
        };
        void fail();
      });
      conn.connect({
        host: t.hostName,
        port: t.port,
        username: t.user,
        authHandler,
        ...(sock ? { sock } : {}),
        ...(knownTypes.length
          ? {
              algorithms: {
                serverHostKey: orderHostKeyAlgorithms(knownTypes) as NonNullable<
                  ConnectConfig['algorithms']
                >['serverHostKey'],
              },
            }
          : {}),
        readyTimeout: this.o.connectTimeoutMs ?? t.connectTimeoutMs ?? 20_000,
        keepaliveInterval: this.o.keepaliveMs ?? 5_000,
        keepaliveCountMax: this.o.keepaliveCountMax ?? 3,
        hostVerifier: (key: Buffer, verify: (ok: boolean) => void) => {
          verifyHostKey({ file: t.knownHostsFile, host: t.hostName, port: t.port, key }).then(
            (v) => {
              if (!v.ok) hostKeyError = v.error;
              verify(v.ok);
            },
            (e: unknown) => {
              hostKeyError = new TransportError(`cannot read ${t.knownHostsFile}: ${String(e)}`, { cause: e });
              verify(false);
            },
          );
        },
      });
      // Every exchange of the protocol is a small request and its reply (handshake steps, open, a
      // digest beside a config read, the channel's EOF). With Nagle's algorithm on, the second of two
      // small writes waited for the peer's delayed ACK (40 ms on Linux) at each such step: a no-change
      // `dsg status` over SSH took 0.57 s where it takes 0.27 s without it (`ssh host true`: 0.18 s).
      // Bulk data goes in full packets either way. (A ProxyCommand's pipe has no such setting.)
      conn.setNoDelay(true);
    });
    return conn;
  }

  private async start(): Promise<void> {
    const t = this.target;
    // ProxyJump: connect hop by hop, each next connection tunnelled (direct-tcpip) through the previous one;
    // the first one through its ProxyCommand if it has one — never directly when one is set
    const chain = this.chainTo(t);
    let sock: Duplex | 'proxy-command' | undefined = chain[0]!.proxyCommand ? 'proxy-command' : undefined;
    let conn: Client | null = null;
    for (let i = 0; i < chain.length; i++) {
      const hop = chain[i]!;
      conn = await this.connectTo(hop, sock);
      if (i === chain.length - 1) break;
      this.jumps.push(conn);
      const next = chain[i + 1]!;
      const via = conn;
      sock = await new Promise<Duplex>((resolve, reject) => {
        via.forwardOut('127.0.0.1', 0, next.hostName, next.port, (err, ch) => {
          if (err)
            reject(
              new TransportError(
                `jump host ${hop.alias} could not reach ${next.hostName}:${next.port}: ${err.message}`,
                {
                  cause: err,
                  recoveryHint: 'Check that the jump host allows TCP forwarding and can reach the target.',
                },
              ),
            );
          else resolve(ch);
        });
      });
    }
    this.conn = conn;
    if (!conn) throw new TransportError('no SSH connection');
    const opened = conn;
    this.connClosed = new Promise<void>((r) => opened.once('close', () => r()));
    const onExit = (code: number | null, signal?: string): void => {
      this.exitInfo = signal ? `agent killed by ${signal}` : `agent exited with code ${code}`;
      this.exitCode = signal ? null : code;
    };
    const stream = await new Promise<ClientChannel>((resolve, reject) => {
      conn.exec(shellCommand(this.o.agentCommand), (err, s) => {
        if (err) {
          reject(new TransportError(`cannot start the agent on ${t.alias}: ${err.message}`, { cause: err }));
          return;
        }
        // Listen before this callback returns: a command that fails at once has its exit status in
        // the same read as the reply to the exec, and ssh2 emits 'exit' while it parses that read,
        // before anyone awaiting this promise runs (under Node 24 always: the status was then lost,
        // and "dsg-agent not found" read as "the agent closed the connection").
        s.once('exit', onExit);
        resolve(s);
      });
    });
    this.stream = stream;
    const channelClosed = new Promise<void>((r) => stream.once('close', () => r()));
    // the agent is done once its channel closes or it has exited
    this.streamClosed = new Promise<void>((r) => {
      stream.once('close', () => r());
      stream.once('exit', () => r());
    });
    stream.stderr.on('data', (d: Buffer) => {
      this.stderrTail = (this.stderrTail + d.toString('utf8')).slice(-2000);
    });
    // a dropped connection must end the channel with an error, never leave a reader hanging
    const dropped = (e?: Error): void => {
      if (!stream.destroyed)
        (stream as unknown as Duplex).destroy(
          new TransportError(`the SSH connection to ${t.alias} was lost${e ? `: ${e.message}` : ''}`, { cause: e }),
        );
    };
    conn.on('error', dropped);
    conn.on('close', () => dropped());
    this.ch = {
      input: stream,
      output: stream,
      // the exit status may arrive after the end of the output: wait for the channel's close (bounded)
      explainClose: async () => {
        // bounded only as a hang guard (sshd sends the status when it has reaped the command)
        await Promise.race([channelClosed, new Promise((r) => setTimeout(r, 20_000).unref())]);
        return agentNotStarted(this.exitCode, this.o.agentCommand, t.alias, t.user);
      },
      describeClose: () =>
        [this.exitInfo, this.stderrTail.trim().split('\n').slice(-3).join(' | ')].filter(Boolean).join('; '),
      // a stalled agent never closes its channel: drop the connection at once (end() then has nothing to wait for)
      abort: (err) => {
        if (!stream.destroyed) (stream as unknown as Duplex).destroy(err);
        if (this.conn === conn) this.conn = null;
        conn.destroy();
        for (const j of this.jumps.splice(0).reverse()) j.destroy();
        void this.stopProxies();
      },
    };
  }

  channel(): AgentChannel {
    if (!this.ch) throw new TransportError('the SSH transport is not open', { recoveryHint: 'Call begin() first.' });
    return this.ch;
  }

  /** Closes the agent's stdin, lets it finish its cleanup, then closes the connection. */
  async end(): Promise<void> {
    this.starting = null;
    this.ch = null;
    const stream = this.stream;
    this.stream = null;
    if (stream && !stream.destroyed) {
      stream.end();
      // 'close' needs the readable side drained, even if nobody reads it any more
      stream.removeAllListeners('readable');
      stream.resume();
      await Promise.race([
        this.streamClosed,
        new Promise((r) => setTimeout(r, this.o.exitTimeoutMs ?? 30_000).unref()),
      ]);
    }
    const conn = this.conn;
    this.conn = null;
    if (conn) {
      // Not conn.once('close') here: a connection that already closed (sshd killed) never
      // emits it again, and the unref'd timer alone let node exit mid-cleanup (exit 13,
      // "unsettled top-level await") before the error was even reported.
      conn.end();
      await Promise.race([this.connClosed, new Promise((r) => setTimeout(r, 5000).unref())]);
      conn.destroy();
    }
    for (const j of this.jumps.reverse()) j.destroy();
    this.jumps = [];
    await this.stopProxies();
  }

  /** Ends every ProxyCommand: stdin closed, then SIGHUP as OpenSSH sends it, then SIGKILL if it lingers. */
  private async stopProxies(): Promise<void> {
    const all = this.proxies.splice(0);
    await Promise.all(
      all.map(async (p) => {
        p.sock.destroy();
        if (p.child.exitCode !== null || p.child.signalCode !== null) return;
        p.child.kill('SIGHUP');
        const gone = await Promise.race([
          p.exited.then(() => true),
          new Promise<boolean>((r) => setTimeout(() => r(false), 2000).unref()),
        ]);
        if (!gone) p.child.kill('SIGKILL');
      }),
    );
  }
}

/** getaddrinfo's answers for a name that does not resolve (none is about credentials) */
const RESOLVE_CODES = new Set(['ENOTFOUND', 'EAI_AGAIN', 'EAI_NONAME', 'EAI_NODATA', 'EAI_FAIL']);

/** The error for a host name that does not resolve, or undefined when `e` is about something else. */
function unresolvedHost(t: ResolvedSshTarget, e: unknown): TransportError | undefined {
  const code = (e as NodeJS.ErrnoException).code ?? '';
  if (!RESOLVE_CODES.has(code)) return undefined;
  const alias = t.hostName === t.alias ? '' : ` (HostName of ${t.alias})`;
  return new TransportError(`cannot resolve host ${JSON.stringify(t.hostName)}${alias}: ${code}`, {
    cause: e,
    recoveryHint: `Check the host name: it is not in DNS or /etc/hosts here${alias ? `; ${t.alias}'s HostName comes from ${t.configFile}` : ''}.`,
  });
}

/**
 * What the remote shell's exit status says when the agent never spoke: 127 is
 * "command not found", 126 "found but cannot run" (POSIX shells, as sshd runs them).
 */
export function agentNotStarted(
  code: number | null,
  command: readonly string[],
  host: string,
  user: string,
): { message: string; recoveryHint: string } | undefined {
  const what = JSON.stringify(command[0] ?? '');
  const fix = `give its path with --agent on init/clone, or set agent: in .dsg/config.local.yml`;
  if (code === 127)
    return {
      message: `dsg-agent not found on ${host} for ${user}: the command ${what} does not exist in that user's PATH`,
      recoveryHint: `Install it on ${host} (npm i -g @dsg/agent, see the agent README), or ${fix}.`,
    };
  if (code === 126)
    return {
      message: `dsg-agent cannot be run on ${host} by ${user}: ${what} is not executable`,
      recoveryHint: `Make it executable for ${user} on ${host} (chmod +x), or ${fix}.`,
    };
  return undefined;
}
