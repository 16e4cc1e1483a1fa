import { describe, expect, it } from 'vitest';
import { assertSyncoidArg, createZfsRunner, estimatedBytes, syncoidArgs, Zfs } from '../src/index.js';

const zfs = new Zfs();

describe('syncoid command line (no ZFS needed)', () => {
  it('sends committed snapshots only, with the ssh settings as syncoid flags', () => {
    expect(
      syncoidArgs({
        source: { zfs, dataset: 'tank/dsg/proj' },
        target: { zfs, dataset: 'backup/dsg/proj', host: 'backup.example.org', user: 'root' },
        ssh: { port: 2222, key: '/root/.ssh/id_ed25519', options: ['UserKnownHostsFile=/etc/dsg/known_hosts'] },
      }),
    ).toEqual([
      '--no-sync-snap',
      '--no-resume',
      '--no-clone-handling',
      '--sshport=2222',
      '--sshkey=/root/.ssh/id_ed25519',
      '--sshoption=UserKnownHostsFile=/etc/dsg/known_hosts',
      'tank/dsg/proj',
      'root@backup.example.org:backup/dsg/proj',
    ]);
    expect(syncoidArgs({ source: { zfs, dataset: 'a/b' }, target: { zfs, dataset: 'c/b' } }).slice(-2)).toEqual([
      'a/b',
      'c/b',
    ]);
  });

  it('refuses anything a shell would act on, or an option in disguise', () => {
    for (const bad of ['a b', 'x;y', '$(id)', '`id`', "a'b", '-oProxyCommand=x', 'a|b', 'a\nb', '']) {
      expect(() => assertSyncoidArg('ssh option', bad)).toThrow(/syncoid passes it through a shell/);
    }
    expect(() =>
      syncoidArgs({ source: { zfs, dataset: 'a/b' }, target: { zfs, dataset: 'c/b', host: 'h;rm' } }),
    ).toThrow(/refused target host/);
    expect(() => syncoidArgs({ source: { zfs, dataset: 'a/b' }, target: { zfs, dataset: 'c/../b' } })).toThrow(
      /refused dataset name/,
    );
    expect(() =>
      syncoidArgs({ source: { zfs, dataset: 'a/b' }, target: { zfs, dataset: 'c/b' }, ssh: { port: 70000 } }),
    ).toThrow(/ssh port/);
  });

  it("sums syncoid's size estimates, or says it has none", () => {
    expect(estimatedBytes('Sending incremental a@s1 ... s2 (~ UNKNOWN):')).toBeNull();
    expect(
      estimatedBytes(
        'INFO: Sending oldest full snapshot a@s1 (~ 4 KB) ...\nSending incremental a@s1 ... s3 (~ 1.5 MB):',
      ),
    ).toBe(4096 + 1572864);
  });

  it('a wrapped runner runs zfs where the wrapper says (sudo inside the wrap)', () => {
    const r = createZfsRunner({ sudo: true, wrap: (argv) => ['ssh', 'host', argv.join(' ')] });
    expect(r.argv(['list', '-H'])).toEqual(['ssh', 'host', 'sudo -n zfs list -H']);
    expect('prepareWorkPath' in r).toBe(false);
  });
});
