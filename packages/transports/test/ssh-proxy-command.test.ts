import { existsSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError, TransportError } from '@dsg/contracts';
import { requireSsh } from '@dsg/testenv';
import { SshTransport, resolveSshTarget } from '../src/index.js';
import { expandProxyCommand } from '../src/ssh-config-resolve.js';
import { ed25519KeyPair, tempDir } from './helpers.js';

const ssh = requireSsh();

let tmp: { dir: string; remove(): Promise<void> };
beforeEach(async () => (tmp = await tempDir()));
afterEach(async () => tmp.remove());

/**
 * A ProxyCommand that is only node: writes its argv and pid (JSON) to the file
 * named last, then relays stdin/stdout to argv host:port. Double quotes inside
 * single quotes, `=` and `;`: the line must reach the shell verbatim.
 */
function relay(marker: string, args: string): string {
  const js = `const [h,p,...r]=process.argv.slice(1);require("fs").writeFileSync(r.at(-1),JSON.stringify({argv:[h,p,...r.slice(0,-1)],pid:process.pid}));const s=require("net").connect(+p,h);process.stdin.pipe(s).pipe(process.stdout);s.on("error",()=>process.exit(1))`;
  return `'${process.execPath}' -e '${js}' ${args} '${marker}'`;
}

function config(lines: string): string {
  return `Host via-proxy\n  HostName ${ssh!.host}\n  Port ${ssh!.port}\n  User ${ssh!.user}\n  IdentityFile ${ssh!.key}\n  IdentitiesOnly yes\n  UserKnownHostsFile ${ssh!.knownHosts}\n${lines}`;
}

const cmd = ['true'];

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('ProxyCommand tokens', () => {
  const t = { alias: 'a', hostName: 'h.example.org', port: 2222, user: 'ana', configFile: '/c' };
  it('expands %h %p %r %n %% and refuses other tokens and shell characters in the values', () => {
    expect(expandProxyCommand({ ...t, proxyCommand: 'nc %h %p # %r %n 100%%' })).toBe(
      'nc h.example.org 2222 # ana a 100%',
    );
    expect(() => expandProxyCommand({ ...t, proxyCommand: 'nc %h %C' })).toThrow(/%C/);
    expect(() => expandProxyCommand({ ...t, proxyCommand: 'nc %h %p', hostName: 'x;touch /tmp/p' })).toThrow(
      ConfigError,
    );
    expect(() => expandProxyCommand({ ...t, proxyCommand: 'nc %h %p', user: '$(id)' })).not.toThrow(); // %r not used
    expect(() => expandProxyCommand({ ...t, proxyCommand: 'nc %r', user: '$(id)' })).toThrow(/run by a shell/);
    expect(() => expandProxyCommand({ ...t, proxyCommand: 'nc %h', hostName: '-oProxyCommand=x' })).toThrow(
      ConfigError,
    );
  });
});

describe('a ProxyCommand that dies or speaks the wrong protocol', () => {
  it('is one TransportError; the later errors ssh2 emits as the pipe closes are not uncaught exceptions', async () => {
    // each makes ssh2 emit two or three errors ("write EPIPE", "Connection lost before
    // handshake", "Premature close", "Invalid identification string"), in an order that
    // depends on timing: a few rounds of each
    const proxies = [
      `sh -c 'exec 0<&-; sleep 0.2'`,
      `sh -c 'echo gone >&2; exit 3'`,
      `sh -c 'echo SSH-1.0-old; sleep 0.2'`,
    ];
    const key = join(tmp.dir, 'id');
    await writeFile(key, ed25519KeyPair().private, { mode: 0o600 });
    for (const [i, proxy] of [...proxies, ...proxies, ...proxies].entries()) {
      const file = join(tmp.dir, `config-${i}`);
      await writeFile(
        file,
        `Host wrong\n  HostName 127.0.0.1\n  User u\n  IdentityFile ${key}\n  UserKnownHostsFile /dev/null\n  ProxyCommand ${proxy}\n`,
      );
      const t = new SshTransport({ host: 'wrong', sshConfigFile: file, agentSocket: null, agentCommand: cmd });
      await expect(t.begin()).rejects.toThrow(/through its ProxyCommand/);
      await t.end();
    }
    // an error ssh2 emits after the last round: an unhandled one fails this test file
    await new Promise((r) => setTimeout(r, 500));
  });
});

describe.skipIf(!ssh)('ProxyCommand against the real sshd', () => {
  it('runs the ProxyCommand (keyword in any case, quoting kept) with its tokens and connects through it; end() stops it', async () => {
    const marker = join(tmp.dir, 'proxy.json');
    const file = join(tmp.dir, 'config');
    await writeFile(file, config(`  proxycommand ${relay(marker, '%h %p %r 100%%')}\n`));
    const t = new SshTransport({ host: 'via-proxy', sshConfigFile: file, agentSocket: null, agentCommand: cmd });
    expect(t.target.proxyCommand).toContain(`-e '`);
    await t.begin();
    const seen = JSON.parse(readFileSync(marker, 'utf8')) as { argv: string[]; pid: number };
    expect(seen.argv).toEqual([ssh!.host, String(ssh!.port), ssh!.user, '100%']);
    expect(alive(seen.pid)).toBe(true);
    await t.end();
    expect(alive(seen.pid)).toBe(false);
  });

  it('a failing ProxyCommand is an error with its stderr — never a direct connection, though the host is reachable', async () => {
    const file = join(tmp.dir, 'config');
    await writeFile(file, config(`  ProxyCommand sh -c 'echo "no route to %h via bastion" >&2; exit 3'\n`));
    const t = new SshTransport({
      host: 'via-proxy',
      sshConfigFile: file,
      agentSocket: null,
      agentCommand: cmd,
      connectTimeoutMs: 60_000,
    });
    const err = (await t.begin().catch((e: unknown) => e)) as TransportError;
    expect(err).toBeInstanceOf(TransportError);
    expect(err.message).toContain('through its ProxyCommand');
    expect(err.message).toContain(`no route to ${ssh!.host} via bastion`);
    expect(err.message).toContain('exited with code 3');
    expect(err.recoveryHint).toContain(file);
  });

  it('ProxyCommand none connects directly; ProxyCommand with ProxyJump, or ProxyUseFdpass, is refused before connecting', async () => {
    const file = join(tmp.dir, 'config');
    await writeFile(file, config('  ProxyCommand none\n'));
    const direct = new SshTransport({ host: 'via-proxy', sshConfigFile: file, agentSocket: null, agentCommand: cmd });
    expect(direct.target.proxyCommand).toBeNull();
    await direct.begin();
    await direct.end();
    await writeFile(file, config('  ProxyJump bastion\n  ProxyCommand nc %h %p\n'));
    expect(() => resolveSshTarget({ host: 'via-proxy', sshConfigFile: file })).toThrow(
      /both ProxyCommand and ProxyJump/,
    );
    await writeFile(file, config('  ProxyCommand nc %h %p\n  ProxyUseFdpass yes\n'));
    expect(() => resolveSshTarget({ host: 'via-proxy', sshConfigFile: file })).toThrow(/ProxyUseFdpass/);
  });

  it('a ProxyJump host with a ProxyCommand is reached through it; the target through the jump host', async () => {
    const marker = join(tmp.dir, 'proxy.json');
    const file = join(tmp.dir, 'config');
    const common = `  HostName ${ssh!.host}\n  Port ${ssh!.port}\n  User ${ssh!.user}\n  IdentityFile ${ssh!.key}\n  IdentitiesOnly yes\n  UserKnownHostsFile ${ssh!.knownHosts}\n`;
    await writeFile(
      file,
      `Host bastion\n${common}  ProxyCommand ${relay(marker, '%h %p')}\nHost behind\n${common}  ProxyJump bastion\n`,
    );
    const t = new SshTransport({ host: 'behind', sshConfigFile: file, agentSocket: null, agentCommand: cmd });
    await t.begin();
    expect(t.hops).toBe(1);
    expect(existsSync(marker)).toBe(true);
    await t.end();
  });

  it("a jump host's own ProxyJump is followed, and a loop of them is refused", async () => {
    const file = join(tmp.dir, 'config');
    const common = `  HostName ${ssh!.host}\n  Port ${ssh!.port}\n  User ${ssh!.user}\n  IdentityFile ${ssh!.key}\n  IdentitiesOnly yes\n  UserKnownHostsFile ${ssh!.knownHosts}\n`;
    await writeFile(
      file,
      `Host outer\n${common}\nHost inner\n${common}  ProxyJump outer\nHost behind\n${common}  ProxyJump inner\n`,
    );
    const t = new SshTransport({ host: 'behind', sshConfigFile: file, agentSocket: null, agentCommand: cmd });
    await t.begin();
    expect(t.hops).toBe(2);
    await t.end();
    await writeFile(
      file,
      `Host a\n  HostName 10.255.255.1\n  ProxyJump b\nHost b\n  HostName 10.255.255.2\n  ProxyJump a\nHost behind\n  ProxyJump a\n`,
    );
    const loop = new SshTransport({ host: 'behind', sshConfigFile: file, agentSocket: null, agentCommand: cmd });
    await expect(loop.begin()).rejects.toThrow(/leads back to itself/);
  });
});
