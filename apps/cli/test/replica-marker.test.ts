// The replica marker is the replica host's word (a repository's content, in the
// threat model): list-repos connects to the host it names only when it is a
// plain host name with a dataset or a clean absolute directory.
import { describe, expect, it } from 'vitest';
import { parseReplicaMarker } from '../src/commands/local-commands.js';

describe('parseReplicaMarker', () => {
  it('reads a ZFS marker (host:pool/…/name) and a posix one (host:/…/name)', () => {
    expect(parseReplicaMarker('dsg-server:tank/dsg/proj')).toEqual({
      kind: 'zfs',
      host: 'dsg-server',
      parent: 'tank/dsg',
      name: 'proj',
    });
    expect(parseReplicaMarker('primary.example.org:/srv/dsg/proj')).toEqual({
      kind: 'posix',
      host: 'primary.example.org',
      parent: '/srv/dsg',
      name: 'proj',
    });
    expect(parseReplicaMarker('h:/proj')).toEqual({ kind: 'posix', host: 'h', parent: '/', name: 'proj' });
  });

  it.each([
    '-oProxyCommand=touch /tmp/x:/a/proj',
    '-oProxyCommand=x:tank/proj',
    'host',
    'host:proj',
    'host:/a/../b/proj',
    'host:/a/./proj',
    'host:/a//proj',
    'host:/a/proj/',
    'host:/a b/proj',
    'ho st:/a/proj',
    'user@host:/a/proj',
    'host:/a/$(x)',
    '',
  ])('refuses %j (never connected to)', (marker) => {
    expect(parseReplicaMarker(marker)).toBeNull();
  });
});
