import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { listAll, type TestParent } from '@dsg/testenv';
import { ZfsRemoteFilesystem } from '../src/index.js';
import { readAll, testHasher, tx } from './helpers.js';

const child = fileURLToPath(new URL('./fixtures/tx-child.mjs', import.meta.url));
const dist = fileURLToPath(new URL('../dist/index.js', import.meta.url));

/** Run one transaction in a child process against the built package, killed at `fault`. */
export async function runChild(
  p: TestParent,
  snapshotId: string,
  files: Record<string, string>,
  fault: string,
  txId: string = tx(),
): Promise<{ code: number | null; signal: string | null; out: string }> {
  if (!existsSync(dist))
    throw new Error('crash tests run the built package: `pnpm turbo run build --filter @dsg/zfs-ops` first');
  const arg = JSON.stringify({
    parent: p.dataset,
    repo: 'repo',
    mountpoint: p.mountpoint,
    snapshotId,
    tx: txId,
    files,
  });
  const c = spawn(process.execPath, [child, arg], {
    env: { ...process.env, DSG_FAULT: fault },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  c.stdout.on('data', (d: Buffer) => (out += d.toString()));
  c.stderr.on('data', (d: Buffer) => (out += d.toString()));
  return new Promise((resolve) => c.on('exit', (code, signal) => resolve({ code, signal, out })));
}

/** After recover(): exactly the expected snapshots, live files = latest snapshot, nothing left over. */
export async function expectEndState(
  p: TestParent,
  snapshots: string[],
  live: Record<string, string> | null,
): Promise<void> {
  const fs = new ZfsRemoteFilesystem({ parent: p.dataset, repo: 'repo', mountpoint: p.mountpoint, hasher: testHasher });
  const names = listAll(p.dataset).join('\n');
  expect(names).not.toMatch(/-init-|-sync-|-old-|sync-temp|-view-/);
  expect(listAll(p.dataset, ['name', 'dsg:tx', 'dsg:phase']).every((l) => l.endsWith('\t-\t-'))).toBe(true);
  expect((await fs.listSnapshots()).map((s) => s.snapshotId)).toEqual(snapshots);
  if (!live) {
    expect(await fs.exists()).toBe(false);
    return;
  }
  expect(listAll(p.dataset, ['name', 'mounted', 'origin'])).toContain(`${p.dataset}/repo\tyes\t-`);
  const latest = snapshots[snapshots.length - 1]!;
  for (const [k, v] of Object.entries(live)) {
    expect(await readAll(await fs.readFile(k))).toBe(v);
    expect(await readAll(await fs.readSnapshotFile(latest, k))).toBe(v);
  }
  // and the repository takes the next transaction
  const t = tx();
  const b = await fs.begin(t);
  expect(b.pattern).toBe('sync');
  expect((await fs.rollback(t)).leftovers).toEqual([]);
}
