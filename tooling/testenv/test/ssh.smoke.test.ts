import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { Client, utils } from 'ssh2';
import { describe, expect, it } from 'vitest';
import { requireSsh, type SshTestEnv } from '../src/index.js';

const sshEnv = requireSsh();

/** The host keys known_hosts lists for [host]:port (plain entries; testenv writes plain ones). */
function knownKeys(file: string, host: string, port: number): Buffer[] {
  const name = port === 22 ? host : `[${host}]:${port}`;
  return readFileSync(file, 'utf8')
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length >= 3 && f[0]!.split(',').includes(name))
    .map((f) => Buffer.from(f[2]!, 'base64'));
}

function run(env: SshTestEnv, knownHostsFile: string, command: string): Promise<string> {
  const trusted = knownKeys(knownHostsFile, env.host, env.port);
  return new Promise((resolve, reject) => {
    const c = new Client();
    c.on('ready', () => {
      c.exec(command, (err, stream) => {
        if (err) return reject(err);
        let out = '';
        stream.on('data', (d: Buffer) => (out += d.toString()));
        stream.on('close', () => {
          c.end();
          resolve(out);
        });
      });
    });
    c.on('error', reject);
    c.connect({
      host: env.host,
      port: env.port,
      username: env.user,
      privateKey: readFileSync(env.key),
      readyTimeout: 10_000,
      hostVerifier: (key: Buffer) => trusted.some((k) => k.equals(key)),
    });
  });
}

describe.skipIf(!sshEnv)('real sshd on 127.0.0.1', () => {
  it('connects with the generated key, verifies the host key, runs a command', async () => {
    const out = await run(sshEnv!, sshEnv!.knownHosts, 'echo dsg-smoke-$((40+2))');
    expect(out.trim()).toBe('dsg-smoke-42');
  });

  it('refuses a connection when the host key does not match known_hosts', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'dsg-kh-'));
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, 'other')]);
    const otherPub = readFileSync(path.join(dir, 'other.pub'), 'utf8').split(' ').slice(0, 2).join(' ');
    const forged = path.join(dir, 'known_hosts');
    writeFileSync(forged, `[${sshEnv!.host}]:${sshEnv!.port} ${otherPub}\n`);
    // sanity: the forged key parses as a real ed25519 key, so only the comparison can refuse it
    expect(utils.parseKey(otherPub)).not.toBeInstanceOf(Error);
    await expect(run(sshEnv!, forged, 'echo should-not-run')).rejects.toThrow(/verification failed/i);
  });
});
