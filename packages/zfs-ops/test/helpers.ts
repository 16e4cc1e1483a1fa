import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  newTransactionId,
  type ByteStream,
  type HasherFactory,
  type SnapshotInfo,
  type StreamHasher,
} from '@dsg/contracts';
import { listAll, type TestParent } from '@dsg/testenv';
import type { ZfsRunner, ZfsRunResult } from '../src/index.js';

/** A real streaming hash (sha256, truncated to xxh3's 16 hex digits): the backend's check is hash-agnostic. */
export const testHasher: HasherFactory = (): StreamHasher => {
  const h = createHash('sha256');
  return { update: (c) => void h.update(c), digest: () => h.digest('hex').slice(0, 16) };
};
export const hashOf = (s: string | Uint8Array): string => createHash('sha256').update(s).digest('hex').slice(0, 16);

export function bytes(s: string | Uint8Array): ByteStream {
  const b = typeof s === 'string' ? new TextEncoder().encode(s) : s;
  return (async function* () {
    await Promise.resolve(); // a real async source, like a network stream
    yield b;
  })();
}

export async function readAll(s: ByteStream | null): Promise<string | null> {
  if (!s) return null;
  const parts: Uint8Array[] = [];
  for await (const c of s) parts.push(c);
  return Buffer.concat(parts).toString('utf8');
}

export function info(n: number, message = `sync ${n}`): SnapshotInfo {
  return {
    snapshotId: `s${n}`,
    message,
    manifestHash: `hash-${n}`,
    user: 'alice@example.org',
    createdAt: '2026-11-25T10:00:00Z',
  };
}

export const tx = newTransactionId;

/** A runner that records every call and answers from a script: proves nothing ran, or drives error paths. */
export function recordingRunner(
  answer: (args: readonly string[]) => ZfsRunResult = () => ({ exitCode: 0, stdout: '', stderr: '' }),
): ZfsRunner & { calls: string[][] } {
  const calls: string[][] = [];
  return {
    calls,
    argv: (args) => ['zfs', ...args],
    run: (args) => {
      calls.push([...args]);
      return Promise.resolve(answer(args));
    },
  };
}

/** `zfs list -t all` rows under P, relative names (P/ stripped), for exact before/after comparisons. */
export function state(p: TestParent, props = ['name', 'origin', 'dsg:tx']): string[] {
  return listAll(p.dataset, props).map((l) => l.split(p.dataset).join('P'));
}

export function fileAt(p: string): string {
  return readFileSync(p, 'utf8');
}
