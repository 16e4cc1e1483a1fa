import { describe, expect, it } from 'vitest';
import { parsePosixReplicaTarget, rsyncBytesSent, sshArgs } from '../src/replicate.js';

describe('posix replication arguments', () => {
  it('parses [user@]host:/abs/parent and /abs/parent', () => {
    expect(parsePosixReplicaTarget('backup@replica.example:/srv/dsg')).toEqual({
      user: 'backup',
      host: 'replica.example',
      parent: '/srv/dsg',
    });
    expect(parsePosixReplicaTarget('replica:/srv/dsg')).toEqual({ host: 'replica', parent: '/srv/dsg' });
    expect(parsePosixReplicaTarget('/srv/dsg-replicas')).toEqual({ parent: '/srv/dsg-replicas' });
  });

  it.each([
    '',
    'relative/dir',
    'host:relative',
    'host:/a/../b',
    'host:/a/./b',
    'host:/a//b',
    'host:/a/',
    'host:/a b',
    "host:/a'b",
    'host:/a\nb',
    '-oProxyCommand=x:/a',
    'u;x@host:/a',
    'host:/-a/$(x)',
  ])('refuses %j with a hint', (to) => {
    expect(() => parsePosixReplicaTarget(to)).toThrow(expect.objectContaining({ code: 'CONFIG' }));
    try {
      parsePosixReplicaTarget(to);
    } catch (e) {
      expect((e as { recoveryHint?: string }).recoveryHint).toMatch(/user@\]host:\/abs\/parent/);
    }
  });

  it('builds ssh arguments rsync can split on blanks, and refuses anything else', () => {
    expect(sshArgs({ port: 2222, key: '/etc/dsg/id', options: ['UserKnownHostsFile=/etc/dsg/kh'] })).toEqual([
      '-o',
      'BatchMode=yes',
      '-p',
      '2222',
      '-i',
      '/etc/dsg/id',
      '-o',
      'UserKnownHostsFile=/etc/dsg/kh',
    ]);
    expect(() => sshArgs({ key: '/k $(x)' })).toThrow(/refused ssh key path/);
    expect(() => sshArgs({ options: ['ProxyCommand=sh -c x'] })).toThrow(/refused ssh option/);
    expect(() => sshArgs({ options: ['-oX'] })).toThrow(/refused ssh option/);
    expect(() => sshArgs({ port: 70000 })).toThrow(/refused ssh port/);
  });

  it("reads rsync's total of bytes sent, whatever its digit grouping", () => {
    expect(rsyncBytesSent('Total bytes sent: 1,234,567\nTotal bytes received: 35\n')).toBe(1234567);
    expect(rsyncBytesSent('Total bytes sent: 135\n')).toBe(135);
    expect(rsyncBytesSent('nothing')).toBe(0);
  });
});
