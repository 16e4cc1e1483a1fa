import { execFileSync, spawnSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { freshParent, requireReplicaSsh, requireZfs, type TestParent } from '../src/index.js';

const zfsEnv = requireZfs();
const ssh = requireReplicaSsh();

/** POSIX single quotes: sshd hands the remote command to a shell (testenv cannot use @dsg/transports' shellCommand). */
const quoted = (argv: string[]): string => argv.map((a) => `'${a.replaceAll("'", `'\\''`)}'`).join(' ');

/** argv run over the real sshd with the given key. */
function remote(key: string, argv: string[]): { status: number | null; stdout: string; stderr: string } {
  return spawnSync(
    'ssh',
    [
      '-o',
      'BatchMode=yes',
      '-o',
      `UserKnownHostsFile=${ssh!.knownHosts}`,
      '-p',
      String(ssh!.port),
      '-i',
      key,
      `${ssh!.user}@${ssh!.host}`,
      quoted(argv),
    ],
    { encoding: 'utf8' },
  );
}

describe.skipIf(!zfsEnv || !ssh)('replication key: zfs-fuse compatibility wrapper over ssh', () => {
  let parent: TestParent;
  afterAll(() => parent?.destroy());

  it('lists only snapshots for `zfs get -t snapshot`, passes everything else through; the plain key runs the real zfs', () => {
    parent = freshParent(zfsEnv!, 'compat');
    const ds = `${parent.dataset}/d`;
    execFileSync('zfs', ['create', ds]);
    execFileSync('zfs', ['snapshot', `${ds}@a`]);
    const cmd = ['zfs', 'get', '-Hpd', '1', '-t', 'snapshot', 'guid', ds];
    const wrapped = remote(ssh!.replicaKey, cmd);
    expect(wrapped.status, wrapped.stderr).toBe(0);
    const lines = wrapped.stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^${ds}@a\\tguid\\t[0-9]+\\t-$`));
    // without -t the wrapper changes nothing: the dataset's own line is there too
    expect(remote(ssh!.replicaKey, ['zfs', 'get', '-Hpd', '1', 'guid', ds]).stdout.trim().split('\n')).toHaveLength(2);
    // a failing zfs keeps its exit status through the filter
    expect(
      remote(ssh!.replicaKey, ['zfs', 'get', '-Hpd', '1', '-t', 'snapshot', 'guid', `${ds}-missing`]).status,
    ).not.toBe(0);
    // the ordinary key is untouched: zfs-fuse itself refuses -t (why the wrapper exists)
    expect(remote(ssh!.key, cmd).status).not.toBe(0);
  });
});
