// Benchmark: what a sync costs as the tree grows. Builds a repository of
// FILES small files (default 20000, in 100 directories), then times begin
// (hard-link clone) and commit (seal + switch) of a one-file change.
// Run after a build: `node bench/micro/posix-tx-cost.mjs` (FILES=100000 for a bigger tree).
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { newTransactionId } from '@dsg/contracts';
import { createXxh3Hasher } from '@dsg/manifest';
import { PosixRemoteFilesystem } from '@dsg/posix-ops';

const FILES = Number(process.env.FILES ?? 20000);
const DIRS = 100;
const hasher = createXxh3Hasher;
const base = await mkdtemp(path.join(os.tmpdir(), 'dsg-posix-bench-'));
const fs = new PosixRemoteFilesystem({ root: path.join(base, 'repo'), hasher });
const info = (n) => ({
  snapshotId: `s${n}`,
  message: '',
  manifestHash: '',
  user: 'bench',
  createdAt: new Date().toISOString(),
});
try {
  let tx = newTransactionId();
  const { workPath } = await fs.begin(tx);
  for (let d = 0; d < DIRS; d++) await mkdir(path.join(workPath, `d${d}`));
  for (let i = 0; i < FILES; i++) await writeFile(path.join(workPath, `d${i % DIRS}`, `f${i}.txt`), `file ${i}\n`);
  await fs.commit(tx, info(1));
  for (let n = 2; n <= 4; n++) {
    tx = newTransactionId();
    const t0 = performance.now();
    await fs.begin(tx);
    const t1 = performance.now();
    const body = `changed ${n}\n`;
    const h = hasher();
    h.update(Buffer.from(body));
    await fs.writeFile(tx, 'd0/f0.txt', [Buffer.from(body)], { hash: h.digest() });
    const t2 = performance.now();
    await fs.commit(tx, info(n));
    const t3 = performance.now();
    console.log(
      `files=${FILES} s${n}: begin ${(t1 - t0).toFixed(0)} ms, write ${(t2 - t1).toFixed(1)} ms, commit ${(t3 - t2).toFixed(0)} ms`,
    );
  }
} finally {
  await rm(base, { recursive: true, force: true });
}
