import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { TransportError } from '@dsg/contracts';
import { requireSsh, testenvDir } from '@dsg/testenv';
import {
  SshTransport,
  fingerprint,
  hostsFieldMatches,
  knownHostName,
  openRemote,
  quoteShellArg,
  resolveSshTarget,
  shellCommand,
} from '../src/index.js';
import { tempDir, testSshTransport } from './helpers.js';

const ssh = requireSsh();
const Ssh2Client = ssh2.Client;

let tmp: { dir: string; remove(): Promise<void> };
beforeEach(async () => (tmp = await tempDir()));
afterEach(async () => tmp.remove());

function hostKey(): { type: string; blob: Buffer; line: string } {
  const [type, b64] = readFileSync(ssh!.knownHosts, 'utf8').trim().split('\n')[0]!.split(/\s+/).slice(1);
  return { type: type!, blob: Buffer.from(b64!, 'base64'), line: `${type} ${b64}` };
}

describe('shell quoting of the agent command', () => {
  it('quotes every argument and refuses control characters', () => {
    expect(quoteShellArg(`it's; rm -rf / $(x) \`y\``)).toBe(`'it'\\''s; rm -rf / $(x) \`y\`'`);
    expect(shellCommand(['node', '/a b/agent.mjs', 'serve'])).toBe(`'node' '/a b/agent.mjs' 'serve'`);
    expect(() => quoteShellArg('a\nb')).toThrow(TransportError);
    expect(() => quoteShellArg('a\0b')).toThrow(TransportError);
    expect(() => shellCommand([])).toThrow(TransportError);
  });
});

describe('known_hosts matching', () => {
  it('matches plain, [host]:port, wildcard, negated and hashed names', () => {
    expect(knownHostName('h', 22)).toBe('h');
    expect(knownHostName('h', 2222)).toBe('[h]:2222');
    expect(hostsFieldMatches('a,b,[h]:2222', '[h]:2222')).toBe(true);
    expect(hostsFieldMatches('*.example.org,!bad.example.org', 'ok.example.org')).toBe(true);
    expect(hostsFieldMatches('*.example.org,!bad.example.org', 'bad.example.org')).toBe(false);
    const salt = Buffer.from('0123456789abcdefghij');
    const mac = (name: string) => `|1|${salt.toString('base64')}|${require_hmac(salt, name)}`;
    expect(hostsFieldMatches(mac('[127.0.0.1]:43709'), '[127.0.0.1]:43709')).toBe(true);
    expect(hostsFieldMatches(mac('[127.0.0.1]:43709'), '[127.0.0.1]:22')).toBe(false);
  });
});

function require_hmac(salt: Buffer, name: string): string {
  return createHmac('sha1', salt).update(name).digest('base64');
}

describe.skipIf(!ssh)('SshTransport against the real sshd', () => {
  const cmd = ['true'];

  it('connects through an ~/.ssh/config alias with a non-default port and IdentityFile', async () => {
    const config = join(tmp.dir, 'config');
    await writeFile(
      config,
      `Host dsg-test-alias\n  HostName ${ssh!.host}\n  Port ${ssh!.port}\n  User ${ssh!.user}\n  IdentityFile ${ssh!.key}\n  IdentitiesOnly yes\n\nHost *\n  Port 1\n`,
    );
    const target = resolveSshTarget({ host: 'dsg-test-alias', sshConfigFile: config, knownHostsFile: ssh!.knownHosts });
    expect(target).toMatchObject({
      hostName: ssh!.host,
      port: ssh!.port,
      user: ssh!.user,
      identityFiles: [ssh!.key],
      identitiesOnly: true,
    });
    const t = new SshTransport({
      host: 'dsg-test-alias',
      sshConfigFile: config,
      knownHostsFile: ssh!.knownHosts,
      agentCommand: cmd,
    });
    await t.begin();
    await t.begin(); // idempotent
    expect(t.channel().input).toBeDefined();
    await t.end();
    await t.end(); // safe twice
  });

  it('turns Nagle off on the connection (each protocol step is a small write that waited for a delayed ACK)', async () => {
    const noDelay = vi.spyOn(Ssh2Client.prototype, 'setNoDelay');
    try {
      const t = testSshTransport(ssh!, tmp.dir, { agentCommand: cmd });
      await t.begin();
      expect(noDelay).toHaveBeenCalledWith(true);
      // ssh2 passes it to the TCP socket it opened (a ProxyCommand's pipe has none)
      const sock = (noDelay.mock.contexts[0] as { _sock?: { setNoDelay?: unknown } })._sock;
      expect(typeof sock?.setNoDelay).toBe('function');
      await t.end();
    } finally {
      noDelay.mockRestore();
    }
  });

  it('accepts a hashed known_hosts entry', async () => {
    const kh = join(tmp.dir, 'known_hosts');
    const salt = Buffer.from('saltsaltsaltsaltsalt');
    await writeFile(
      kh,
      `|1|${salt.toString('base64')}|${require_hmac(salt, `[${ssh!.host}]:${ssh!.port}`)} ${hostKey().line}\n`,
    );
    const t = testSshTransport(ssh!, tmp.dir, { knownHostsFile: kh, agentCommand: cmd });
    await t.begin();
    await t.end();
  });

  it('refuses an unknown host with the fingerprint and the ssh-keyscan hint', async () => {
    const kh = join(tmp.dir, 'known_hosts');
    await writeFile(kh, `other.example.org ${hostKey().line}\n`);
    const t = testSshTransport(ssh!, tmp.dir, { knownHostsFile: kh, agentCommand: cmd });
    const err = (await t.begin().catch((e: unknown) => e)) as TransportError;
    expect(err).toBeInstanceOf(TransportError);
    expect(err.message).toContain('is not known');
    expect(err.message).toContain(fingerprint(hostKey().blob));
    expect(err.recoveryHint).toContain(`ssh-keyscan -p ${ssh!.port} ${ssh!.host} >> ${kh}`);
    await t.end(); // safe after a failed begin
    await t.end();
  });

  it('refuses a changed host key with both hints', async () => {
    const kh = join(tmp.dir, 'known_hosts');
    // a different ed25519 key recorded for this host:port
    const other = Buffer.from(hostKey().blob);
    other[other.length - 1] = other[other.length - 1]! ^ 0xff;
    await writeFile(kh, `[${ssh!.host}]:${ssh!.port} ${hostKey().type} ${other.toString('base64')}\n`);
    const t = testSshTransport(ssh!, tmp.dir, { knownHostsFile: kh, agentCommand: cmd });
    const err = (await t.begin().catch((e: unknown) => e)) as TransportError;
    expect(err).toBeInstanceOf(TransportError);
    expect(err.message).toContain('HOST KEY CHANGED');
    expect(err.message).toContain(fingerprint(hostKey().blob));
    expect(err.recoveryHint).toContain(`ssh-keygen -R '[${ssh!.host}]:${ssh!.port}' -f ${kh}`);
    await t.end();
  });

  it('a refused port surfaces as TransportError, not a hang', async () => {
    const t = new SshTransport({
      host: '127.0.0.1',
      port: 1,
      user: 'x',
      identityFile: ssh!.key,
      knownHostsFile: ssh!.knownHosts,
      sshConfigFile: join(tmp.dir, 'none'),
      agentSocket: null,
      agentCommand: cmd,
      connectTimeoutMs: 5000,
    });
    await expect(t.begin()).rejects.toBeInstanceOf(TransportError);
  });

  it('a host name that does not resolve is reported as such, before any word about credentials', async () => {
    const t = new SshTransport({
      host: 'no-such-host.invalid', // .invalid never resolves (RFC 2606)
      user: 'x',
      identityFile: ssh!.key,
      knownHostsFile: ssh!.knownHosts,
      sshConfigFile: join(tmp.dir, 'none'),
      agentSocket: null,
      agentCommand: cmd,
      connectTimeoutMs: 30_000,
    });
    const err = (await t.begin().catch((e: unknown) => e)) as TransportError;
    expect(err).toBeInstanceOf(TransportError);
    expect(err.message).toMatch(/^cannot resolve host "no-such-host\.invalid": (ENOTFOUND|EAI_AGAIN)/);
    expect(err.recoveryHint).toContain('not in DNS or /etc/hosts');
    expect(`${err.message} ${err.recoveryHint}`).not.toMatch(/key|auth|user/i);
  });

  it.each([
    [
      ['/nonexistent/dsg-agent', 'serve'],
      /^dsg-agent not found on 127\.0\.0\.1 for \w+: the command "\/nonexistent\/dsg-agent" does not exist/,
      /npm i -g @dsg\/agent/,
    ],
    [['/tmp', 'serve'], /^dsg-agent cannot be run on 127\.0\.0\.1 by \w+: "\/tmp" is not executable/, /chmod \+x/],
  ])('an agent command the server cannot run (%j) says so, with what to do', async (command, message, hint) => {
    const t = testSshTransport(ssh!, tmp.dir, { agentCommand: command });
    const err = (await openRemote(t, 'p').catch((e: unknown) => e)) as TransportError;
    expect(err).toBeInstanceOf(TransportError);
    expect(err.message).toMatch(message);
    expect(err.recoveryHint).toMatch(hint);
    expect(err.recoveryHint).toContain('--agent');
  });

  it('goes through a ProxyJump host (the test sshd as its own jump host)', async () => {
    const config = join(tmp.dir, 'config');
    const common = `  HostName ${ssh!.host}\n  Port ${ssh!.port}\n  User ${ssh!.user}\n  IdentityFile ${ssh!.key}\n  IdentitiesOnly yes\n  UserKnownHostsFile ${ssh!.knownHosts}\n`;
    await writeFile(config, `Host bastion\n${common}\nHost behind\n${common}  ProxyJump bastion\n`);
    const t = new SshTransport({ host: 'behind', sshConfigFile: config, agentCommand: cmd });
    expect(t.target.proxyJump).toBe('bastion');
    await t.begin();
    expect(t.hops).toBe(1);
    await t.end();
    expect(t.hops).toBe(0);
  });

  it('a ProxyJump hop with an unknown host key is refused too', async () => {
    const config = join(tmp.dir, 'config');
    const kh = join(tmp.dir, 'empty_known_hosts');
    await writeFile(kh, '');
    await writeFile(
      config,
      `Host bastion\n  HostName ${ssh!.host}\n  Port ${ssh!.port}\n  User ${ssh!.user}\n  IdentityFile ${ssh!.key}\n  IdentitiesOnly yes\n  UserKnownHostsFile ${kh}\nHost behind\n  HostName 10.255.255.1\n  ProxyJump bastion\n`,
    );
    const t = new SshTransport({ host: 'behind', sshConfigFile: config, agentCommand: cmd });
    await expect(t.begin()).rejects.toThrow(/is not known/);
  });

  it('end() after sshd dropped the connection returns at once (it used to wait on a close event that had already fired)', async () => {
    const t = testSshTransport(ssh!, tmp.dir, {
      agentCommand: ['sh', '-c', 'echo $$; exec sleep 60'],
      // end() used to wait on a close event that had already fired, i.e. this long: the test's timeout catches it
      exitTimeoutMs: 600_000,
    });
    await t.begin();
    const ch = t.channel();
    const pid = await new Promise<number>((resolve) =>
      ch.input.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))),
    );
    const gone = new Promise<void>((r) => ch.input.once('close', () => r()));
    ch.input.on('error', () => {});
    // the sshd processes serving this one connection: between the listener and the shell
    const listener = Number(readFileSync(join(testenvDir(), 'sshd.pid'), 'utf8').trim());
    const ppid = (p: number): number => Number(/^PPid:\s+(\d+)$/m.exec(readFileSync(`/proc/${p}/status`, 'utf8'))![1]);
    const chain: number[] = [];
    for (let p = ppid(pid); p !== listener; p = ppid(p)) {
      expect(p).toBeGreaterThan(1);
      chain.push(p);
    }
    for (const p of chain) process.kill(p, 'SIGKILL');
    await gone;
    await t.end();
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone with its session */
    }
  }, 120_000);
});
