import { readFileSync, existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ByteStream, HasherFactory, LockHolder } from '@dsg/contracts';
import { testenvDir } from '@dsg/testenv';

export const BUNDLE = fileURLToPath(new URL('../dist/dsg-agent.mjs', import.meta.url));

export async function tempDir(label = 'dsg-agent-'): Promise<{ dir: string; remove(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), label));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

export function hashOf(h: HasherFactory, b: Uint8Array): string {
  const x = h();
  x.update(b);
  return x.digest();
}

export async function hashStream(h: HasherFactory, s: ByteStream | null): Promise<{ hash: string; size: number }> {
  if (!s) throw new Error('no stream');
  const x = h();
  let size = 0;
  for await (const c of s) {
    x.update(c);
    size += c.length;
  }
  return { hash: x.digest(), size };
}

export function holder(user = 'alice@example.org'): LockHolder {
  return { user, host: hostname(), pid: process.pid, since: new Date().toISOString() };
}

export function snap(id: string) {
  return {
    snapshotId: id,
    message: `snapshot ${id}`,
    manifestHash: '0123456789abcdef',
    user: 'alice@example.org',
    createdAt: new Date().toISOString(),
  };
}

export async function until(cond: () => boolean | Promise<boolean>, ms = 120_000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`${what} not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function ppid(pid: number): number {
  const m = /^PPid:\s+(\d+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]);
}

/**
 * The processes between the test sshd's listener and `pid` (exclusive of
 * both): the per-connection sshd (and sshd-session/shell) serving it.
 */
export function sshdSessionChain(pid: number, listenerPidFile = join(testenvDir(), 'sshd.pid')): number[] {
  const listener = Number(readFileSync(listenerPidFile, 'utf8').trim());
  const chain: number[] = [];
  let p = ppid(pid);
  while (p !== listener) {
    if (p <= 1) throw new Error(`process ${pid} does not descend from the sshd listener ${listener}`);
    chain.push(p);
    p = ppid(p);
  }
  return chain;
}

export function alive(pid: number): boolean {
  return existsSync(`/proc/${pid}`) && !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
}
