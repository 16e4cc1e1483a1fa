import { readdirSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe } from 'vitest';
import { freshParent, listAll, requireSsh, requireZfs, type TestParent } from '@dsg/testenv';
import { AGENT } from './helpers.js';
import { e2eSuite } from './e2e-suite.js';

const zfs = requireZfs();
const ssh = requireSsh();
const parents: TestParent[] = [];
afterAll(() => {
  for (const p of parents) p.destroy();
});

const sshArgs = (): string[] => [
  '--port',
  String(ssh!.port),
  '--ssh-user',
  ssh!.user,
  '--agent',
  'node',
  '--agent',
  AGENT,
];

describe.skipIf(!zfs || !ssh)('end to end: over the real sshd to the real zfs-fuse pool', () => {
  const parent = freshParent(zfs!, 'cli');
  parents.push(parent);
  e2eSuite({
    label: 'zfs/ssh',
    snapmountMakesView: true,
    initArgs: () => [
      '--host',
      ssh!.host,
      '--repo-type',
      'zfs',
      '--pool',
      parent.dataset,
      '--repo-path',
      parent.mountpoint,
      ...sshArgs(),
    ],
    cloneArgs: (name) => [
      `${ssh!.host}:${parent.mountpoint}/${name}`,
      '--repo-type',
      'zfs',
      '--pool',
      parent.dataset,
      ...sshArgs(),
    ],
    userYaml: `ssh:\n  key_path: ${ssh!.key}\n  known_hosts: ${ssh!.knownHosts}\n`,
    repoListing: (name) => [
      ...listAll(parent.dataset).filter((n) => n.includes(name)),
      ...readdirSync(path.join(parent.mountpoint, name), { recursive: true }).map(String).sort(),
    ],
    lockFile: (name) => path.join(parent.mountpoint, `.${name}.dsg-lock`),
  });
});
