// Child process for workload 4: the cost of one empty ZFS transaction
// (begin + commit, no files) on a repository of N files. Usage:
//   node zfs-tx.mjs <pool>/<parent> <files> <runs>
// Prints one JSON line { min, median, max } in seconds.
import { mkdir, writeFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { ZfsRemoteFilesystem } from '@dsg/zfs-ops';
import { createXxh3Hasher } from '@dsg/manifest';
import { newTransactionId } from '@dsg/contracts';
import { destroyDataset } from '@dsg/testenv';

const [parent, filesArg, runsArg] = process.argv.slice(2);
const files = Number(filesArg),
  runs = Number(runsArg);
execFileSync('zfs', ['create', '-p', parent]);
const mountpoint = execFileSync('zfs', ['get', '-H', '-o', 'value', 'mountpoint', parent], { encoding: 'utf8' }).trim();
const fs = new ZfsRemoteFilesystem({ parent, repo: 'r', mountpoint, hasher: createXxh3Hasher });
const info = (n) => ({
  snapshotId: `s${n}`,
  message: 'bench',
  manifestHash: '0000000000000000',
  user: 'bench@example.org',
  createdAt: new Date().toISOString(),
});

// s1: N files written straight into the init work area (the transaction under test is the empty one after it)
const tx1 = newTransactionId();
const { workPath } = await fs.begin(tx1);
const buf = Buffer.alloc(1024, 7);
for (let i = 0; i < files; i++) {
  const dir = path.join(workPath, 'input', `d${Math.floor(i / 1000)}`);
  if (i % 1000 === 0) await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, `f${i}`), buf);
}
await fs.commit(tx1, info(1));

const secs = [];
for (let i = 0; i < runs + 1; i++) {
  const t0 = process.hrtime.bigint();
  const tx = newTransactionId();
  await fs.begin(tx);
  await fs.commit(tx, info(i + 2));
  if (i > 0) secs.push(Number(process.hrtime.bigint() - t0) / 1e9);
}
// zfs-fuse says "busy" for a moment after a commit's unmount/promote: testenv retries
destroyDataset(parent);
secs.sort((a, b) => a - b);
console.log(
  JSON.stringify({ min: secs[0], median: secs[Math.floor(secs.length / 2)], max: secs[secs.length - 1], runs }),
);
