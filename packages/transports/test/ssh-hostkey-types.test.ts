import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer, connect } from 'node:net';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TransportError } from '@dsg/contracts';
import { requireSsh } from '@dsg/testenv';
import { SshTransport, fingerprint } from '../src/index.js';
import { DEFAULT_HOST_KEY_ALGORITHMS, keyTypeOfAlgorithm, orderHostKeyAlgorithms } from '../src/known-hosts.js';
import { tempDir } from './helpers.js';

const ssh = requireSsh();
const SSHD = '/usr/sbin/sshd';

describe('host key algorithm order', () => {
  it('puts the algorithms of the known key types first, each group in ssh2 order (as OpenSSH does)', () => {
    expect(orderHostKeyAlgorithms([])).toEqual(DEFAULT_HOST_KEY_ALGORITHMS);
    expect(orderHostKeyAlgorithms(['ecdsa-sha2-nistp256'])[0]).toBe('ecdsa-sha2-nistp256');
    expect(orderHostKeyAlgorithms(['ssh-rsa', 'ecdsa-sha2-nistp384']).slice(0, 4)).toEqual([
      'ecdsa-sha2-nistp384',
      'rsa-sha2-512',
      'rsa-sha2-256',
      'ssh-rsa',
    ]);
    expect(orderHostKeyAlgorithms(['ssh-ed25519'])).toEqual(DEFAULT_HOST_KEY_ALGORITHMS);
    expect(orderHostKeyAlgorithms(['ssh-dss'])).toEqual(DEFAULT_HOST_KEY_ALGORITHMS); // never adds one ssh2 does not offer
    expect(keyTypeOfAlgorithm('rsa-sha2-512')).toBe('ssh-rsa');
    expect([...orderHostKeyAlgorithms(['ssh-rsa'])].sort()).toEqual([...DEFAULT_HOST_KEY_ALGORITHMS].sort());
  });
});

/** A second sshd on 127.0.0.1 with an ed25519 AND an ecdsa host key (the testenv one has ed25519 only). */
describe.skipIf(!ssh || !existsSync(SSHD))('a server with two host key types', () => {
  let tmp: { dir: string; remove(): Promise<void> };
  let sshd: ChildProcess | undefined;
  let port = 0;
  const pub: Record<'ed25519' | 'ecdsa' | 'rsa', { type: string; b64: string }> = {} as never;
  const keygen = (file: string, type: string): { type: string; b64: string } => {
    const r = spawnSync('ssh-keygen', ['-q', '-t', type, '-N', '', '-C', 'dsg-test', '-f', file], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`ssh-keygen -t ${type}: ${r.stderr}`);
    const [t, b64] = readFileSync(`${file}.pub`, 'utf8').split(/\s+/);
    return { type: t!, b64: b64! };
  };

  beforeAll(async () => {
    tmp = await tempDir('dsg-hk-');
    pub.ed25519 = keygen(join(tmp.dir, 'host_ed25519'), 'ed25519');
    pub.ecdsa = keygen(join(tmp.dir, 'host_ecdsa'), 'ecdsa');
    pub.rsa = keygen(join(tmp.dir, 'not_the_host_rsa'), 'rsa'); // a key the server does not have
    port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const config = join(tmp.dir, 'sshd_config');
    await writeFile(
      config,
      [
        `Port ${port}`,
        'ListenAddress 127.0.0.1',
        `HostKey ${join(tmp.dir, 'host_ed25519')}`,
        `HostKey ${join(tmp.dir, 'host_ecdsa')}`,
        `PidFile ${join(tmp.dir, 'sshd.pid')}`,
        `AuthorizedKeysFile ${join(dirname(ssh!.key), 'authorized_keys')}`,
        'PermitRootLogin prohibit-password',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'UsePAM no',
        'StrictModes no',
        '',
      ].join('\n'),
    );
    await mkdir('/run/sshd', { recursive: true }).catch(() => {});
    sshd = spawn(SSHD, ['-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    sshd.stderr!.on('data', (d: Buffer) => (log += d.toString()));
    // ready once it accepts a connection (a hang guard, not a timing assertion)
    for (let i = 0; ; i++) {
      const up = await new Promise<boolean>((resolve) => {
        const c = connect(port, '127.0.0.1', () => (c.destroy(), resolve(true))).on('error', () => resolve(false));
      });
      if (up) break;
      if (sshd.exitCode !== null || i > 300) throw new Error(`the second sshd did not start: ${log}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  });

  afterAll(async () => {
    if (sshd && sshd.exitCode === null) {
      const gone = new Promise((r) => sshd!.once('exit', r));
      sshd.kill('SIGTERM');
      await gone;
    }
    await tmp?.remove();
  });

  async function knownHosts(...keys: { type: string; b64: string }[]): Promise<string> {
    const file = join(tmp.dir, `known_hosts_${Math.random().toString(36).slice(2)}`);
    await writeFile(file, keys.map((k) => `[127.0.0.1]:${port} ${k.type} ${k.b64}\n`).join(''));
    return file;
  }

  function transport(kh: string): SshTransport {
    return new SshTransport({
      host: '127.0.0.1',
      port,
      user: ssh!.user,
      identityFile: ssh!.key,
      knownHostsFile: kh,
      sshConfigFile: join(tmp.dir, 'none'),
      agentSocket: null,
      agentCommand: ['true'],
    });
  }

  async function refusal(kh: string): Promise<TransportError> {
    const t = transport(kh);
    const err = await t.begin().then(
      () => null,
      (e: unknown) => e,
    );
    await t.end();
    expect(err).toBeInstanceOf(TransportError);
    return err as TransportError;
  }

  it('the server prefers ed25519 when nothing is known (what used to be compared against the ecdsa line)', async () => {
    const err = await refusal(await knownHosts());
    expect(err.message).toContain(`ssh-ed25519 ${fingerprint(Buffer.from(pub.ed25519.b64, 'base64'))}`);
  });

  it('connects when known_hosts has only its ecdsa key (was a false HOST KEY CHANGED)', async () => {
    const t = transport(await knownHosts(pub.ecdsa));
    await t.begin();
    await t.end();
  });

  it('connects with only its ed25519 key, and with both', async () => {
    for (const kh of [await knownHosts(pub.ed25519), await knownHosts(pub.ecdsa, pub.ed25519)]) {
      const t = transport(kh);
      await t.begin();
      await t.end();
    }
  });

  it('a different ecdsa key for the host is still HOST KEY CHANGED, refused', async () => {
    const other = Buffer.from(pub.ecdsa.b64, 'base64');
    other[other.length - 1] = other[other.length - 1]! ^ 0xff;
    const kh = await knownHosts({ type: pub.ecdsa.type, b64: other.toString('base64') });
    const err = await refusal(kh);
    expect(err.message).toContain('HOST KEY CHANGED');
    expect(err.message).toContain(`${pub.ecdsa.type} ${fingerprint(Buffer.from(pub.ecdsa.b64, 'base64'))}`);
    expect(err.recoveryHint).toContain(`ssh-keygen -R '[127.0.0.1]:${port}' -f ${kh}`);
  });

  it('a known key of a type the server does not have makes it an unknown host, not a changed one', async () => {
    const kh = await knownHosts(pub.rsa);
    const err = await refusal(kh);
    expect(err.message).not.toContain('CHANGED');
    expect(err.message).toContain('is not known');
    expect(err.message).toContain('has only ssh-rsa key(s)');
    expect(err.recoveryHint).toContain(`ssh-keyscan -p ${port} 127.0.0.1 >> ${kh}`);
  });
});
