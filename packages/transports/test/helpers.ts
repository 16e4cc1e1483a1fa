import { Readable } from 'node:stream';
import { mkdtemp, rm } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { utils } from 'ssh2';
import type { ByteStream, LockHolder } from '@dsg/contracts';
import type { SshTestEnv } from '@dsg/testenv';
import { AgentServer, SshTransport, type SshTransportOptions } from '../src/index.js';
import { FakeRemoteFilesystem, testHasher } from './fake-fs.js';

export async function tempDir(label = 'dsg-tr-'): Promise<{ dir: string; remove(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), label));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

/** An SshTransport to the test sshd as its user with its key: no ssh_config, no ssh-agent; `o` adds or overrides. */
export function testSshTransport(
  ssh: SshTestEnv,
  dir: string,
  o: Partial<SshTransportOptions> & Pick<SshTransportOptions, 'agentCommand'>,
): SshTransport {
  return new SshTransport({
    host: ssh.host,
    port: ssh.port,
    user: ssh.user,
    identityFile: ssh.key,
    knownHostsFile: ssh.knownHosts,
    sshConfigFile: join(dir, 'none'),
    agentSocket: null,
    ...o,
  });
}

export function hashOf(b: Uint8Array): string {
  const h = testHasher();
  h.update(b);
  return h.digest();
}

export function bytes(b: Uint8Array, chunk = 64 * 1024): ByteStream {
  const parts: Uint8Array[] = [];
  for (let i = 0; i < b.length; i += chunk) parts.push(b.subarray(i, i + chunk));
  return Readable.from(parts);
}

export async function collect(s: ByteStream | null): Promise<Buffer> {
  if (!s) throw new Error('no stream');
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}

/** The SnapshotInfo of a test commit. */
export const snap = (id: string) => ({
  snapshotId: id,
  message: 'm',
  manifestHash: 'h',
  user: 'alice',
  createdAt: new Date().toISOString(),
});

export function holder(user = 'alice@example.org'): LockHolder {
  return { user, host: hostname(), pid: process.pid, since: new Date().toISOString() };
}

/** An AgentServer over fake backends: one FakeRemoteFilesystem per repository dir under root. */
export function fakeServer(
  root: string,
  log: string[] = [],
): { server: AgentServer; repos: Map<string, FakeRemoteFilesystem> } {
  const repos = new Map<string, FakeRemoteFilesystem>();
  const server = new AgentServer({
    host: {
      open: (name) => {
        const fs = repos.get(name) ?? new FakeRemoteFilesystem(join(root, name));
        repos.set(name, fs);
        return fs;
      },
      lockFile: (name) => join(root, name, 'lock'),
      list: () => Promise.resolve([...repos.keys()]),
    },
    hasher: testHasher,
    log: (l) => log.push(l),
    agentVersion: 'test',
  });
  return { server, repos };
}

/**
 * A fresh ed25519 key pair (OpenSSH format) that ssh2 can read back. ssh2
 * 1.17's generateKeyPairSync strips a public key's leading zero byte, so
 * about 1 pair in 256 is one its own parseKey refuses (mscdex/ssh2#1390):
 * a test using such a key failed with "no usable SSH credentials".
 */
export function ed25519KeyPair(): { private: string; public: string } {
  for (;;) {
    const k = utils.generateKeyPairSync('ed25519');
    if (!(utils.parseKey(k.private) instanceof Error) && !(utils.parseKey(k.public) instanceof Error)) return k;
  }
}
