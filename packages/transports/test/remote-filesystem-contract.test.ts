// The RemoteFilesystem contract through the agent protocol (AgentClient over an
// in-process AgentServer) against the real posix and ZFS backends, and on the
// fake the protocol tests use (a fake must keep the contract it stands in for).
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe } from 'vitest';
import type { RepositoryHost } from '@dsg/contracts';
import { remoteFilesystemContract, treeLines, type RemoteFilesystemFixture } from '@dsg/contracts/testing';
import { posixHost } from '@dsg/posix-ops';
import { freshParent, listAll, requireZfs } from '@dsg/testenv';
import { zfsHost } from '@dsg/zfs-ops';
import { AgentServer, LocalTransport, openRemote } from '../src/index.js';
import { FakeRemoteFilesystem, testHasher } from './fake-fs.js';
import { hashOf, holder, tempDir } from './helpers.js';

/** A locked AgentClient session on repository `repo` of host, as the CLI opens one. */
async function overAgent(
  host: RepositoryHost,
  residue: () => Promise<string[]>,
  o: { concurrentTransactions: boolean; cleanup(): Promise<void> },
): Promise<RemoteFilesystemFixture> {
  const server = new AgentServer({ host, hasher: testHasher, log: () => {} });
  const transport = new LocalTransport({ mode: 'in-process', server });
  const client = await openRemote(transport, 'repo');
  await client.lock(holder());
  return {
    fs: client,
    hash: hashOf,
    residue,
    concurrentTransactions: o.concurrentTransactions,
    snapshotHistory: true,
    reportsLayout: false,
    isParked: (line) => line.includes('parked'),
    cleanup: async () => {
      await client.unlock();
      await transport.end();
      await o.cleanup();
    },
  };
}

remoteFilesystemContract('AgentClient → PosixRemoteFilesystem', async () => {
  const tmp = await tempDir();
  const root = join(tmp.dir, 'repos');
  await mkdir(root);
  // the lock file lives in the repository directory, and stays put during a test
  return overAgent(posixHost({ root, hasher: testHasher }), () => treeLines(root), {
    concurrentTransactions: true,
    cleanup: () => tmp.remove(),
  });
});

const zfs = requireZfs();
describe.skipIf(!zfs)('over the real pool', () => {
  remoteFilesystemContract('AgentClient → ZfsRemoteFilesystem', () => {
    const p = freshParent(zfs!, 'contract-agent');
    return overAgent(
      zfsHost({ parent: p.dataset, mountpoint: p.mountpoint, hasher: testHasher }),
      async () => [...listAll(p.dataset, ['name', 'origin', 'dsg:tx', 'mounted']), ...(await treeLines(p.mountpoint))],
      { concurrentTransactions: false, cleanup: () => Promise.resolve(p.destroy()) },
    );
  });
});

remoteFilesystemContract("FakeRemoteFilesystem (the protocol tests' fake)", async () => {
  const tmp = await tempDir();
  return {
    fs: new FakeRemoteFilesystem(join(tmp.dir, 'repo'), { gates: true }),
    hash: hashOf,
    residue: () => treeLines(tmp.dir),
    concurrentTransactions: true,
    snapshotHistory: true,
    reportsLayout: false,
    isParked: (line) => line.includes('parked'),
    cleanup: () => tmp.remove(),
  };
});
