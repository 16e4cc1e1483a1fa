// The RemoteFilesystem contract on the real pool: a fresh parent dataset per test.
import { describe } from 'vitest';
import { remoteFilesystemContract, treeLines } from '@dsg/contracts/testing';
import { freshParent, listAll, requireZfs } from '@dsg/testenv';
import { ZfsRemoteFilesystem } from '../src/index.js';
import { hashOf, testHasher } from './helpers.js';

const env = requireZfs();

describe.skipIf(!env)('ZfsRemoteFilesystem on the real pool', () => {
  remoteFilesystemContract('ZfsRemoteFilesystem', () => {
    const p = freshParent(env!, 'contract');
    return Promise.resolve({
      fs: new ZfsRemoteFilesystem({ parent: p.dataset, repo: 'repo', mountpoint: p.mountpoint, hasher: testHasher }),
      hash: hashOf,
      // datasets with their origin and transaction mark, and every file where they are mounted
      residue: async () => [
        ...listAll(p.dataset, ['name', 'origin', 'dsg:tx', 'mounted']),
        ...(await treeLines(p.mountpoint)),
      ],
      concurrentTransactions: false,
      snapshotHistory: true,
      reportsLayout: true,
      // beside the lock file, in P's directory
      isParked: (line) => line.startsWith('.repo.dsg-parked/'),
      cleanup: () => Promise.resolve(p.destroy()),
    });
  });
});
