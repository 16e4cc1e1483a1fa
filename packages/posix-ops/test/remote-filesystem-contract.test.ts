// The RemoteFilesystem contract on both posix layouts, on a real disk.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { remoteFilesystemContract, treeLines, type RemoteFilesystemFixture } from '@dsg/contracts/testing';
import { FlatRemoteFilesystem, PosixRemoteFilesystem } from '../src/index.js';
import { hashOf, xxh3Hasher } from './helpers.js';

async function fixture(
  make: (root: string) => PosixRemoteFilesystem | FlatRemoteFilesystem,
  snapshotHistory: boolean,
  reportsLayout: boolean,
  parkedDir: string,
  /** a directory that stays only because the parked directory is in it */
  parkedParent?: string,
): Promise<RemoteFilesystemFixture> {
  const base = await mkdtemp(path.join(os.tmpdir(), 'dsg-posix-contract-'));
  return {
    fs: make(path.join(base, 'repo')),
    hash: hashOf,
    residue: () => treeLines(base),
    concurrentTransactions: true,
    snapshotHistory,
    reportsLayout,
    isParked: (line) => line.startsWith(`${parkedDir}/`) || line === `${parkedParent}/`,
    cleanup: () => rm(base, { recursive: true, force: true }),
  };
}

remoteFilesystemContract('PosixRemoteFilesystem (snapshot layout)', () =>
  fixture((root) => new PosixRemoteFilesystem({ root, hasher: xxh3Hasher }), true, false, 'repo/parked'),
);
remoteFilesystemContract("FlatRemoteFilesystem (the original's xfs layout)", () =>
  fixture(
    (root) => new FlatRemoteFilesystem({ root, hasher: xxh3Hasher }),
    false,
    true,
    'repo/.dsg/tx/parked',
    'repo/.dsg/tx',
  ),
);
