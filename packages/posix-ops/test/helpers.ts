import { createHash } from 'node:crypto';
import { lstat, mkdtemp, readdir, readFile, readlink, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { xxh3 } from '@node-rs/xxhash';
import type { ByteStream, HasherFactory, StreamHasher, TransactionId } from '@dsg/contracts';
import { newTransactionId } from '@dsg/contracts';
import { PosixRemoteFilesystem } from '../src/index.js';

/** The real streaming xxh3-64 dsg uses, as a HasherFactory. */
export const xxh3Hasher: HasherFactory = (): StreamHasher => {
  const h = xxh3.Xxh3.withSeed();
  return {
    update: (c) => h.update(Buffer.from(c.buffer, c.byteOffset, c.byteLength)),
    digest: () => h.digest().toString(16).padStart(16, '0'),
  };
};

export function hashOf(data: string | Uint8Array): string {
  const h = xxh3Hasher();
  h.update(typeof data === 'string' ? Buffer.from(data) : data);
  return h.digest();
}

/** Chunked like a network stream, with a real await between chunks. */
export async function* streamOf(data: string | Uint8Array, chunk = 7): ByteStream {
  const b = typeof data === 'string' ? Buffer.from(data) : Buffer.from(data);
  for (let i = 0; i < b.length; i += chunk) {
    await Promise.resolve();
    yield b.subarray(i, i + chunk);
  }
}

export async function text(s: ByteStream | null): Promise<string | null> {
  if (s === null) return null;
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(Buffer.from(c));
  return Buffer.concat(parts).toString('utf8');
}

export interface Sandbox {
  base: string;
  root: string;
  fs: PosixRemoteFilesystem;
  cleanup(): Promise<void>;
}

export async function sandbox(name = 'repo'): Promise<Sandbox> {
  const base = await mkdtemp(path.join(os.tmpdir(), 'dsg-posix-'));
  const root = path.join(base, name);
  return {
    base,
    root,
    fs: new PosixRemoteFilesystem({ root, hasher: xxh3Hasher }),
    cleanup: () => rm(base, { recursive: true, force: true }),
  };
}

/** tx ids in increasing order (they sort by time). */
let clock = Date.UTC(2026, 0, 1);
export function txId(): TransactionId {
  clock += 1000;
  return newTransactionId(new Date(clock));
}

export async function put(fs: PosixRemoteFilesystem, tx: TransactionId, p: string, content: string): Promise<void> {
  await fs.writeFile(tx, p, streamOf(content), { hash: hashOf(content), size: Buffer.byteLength(content) });
}

/** One whole sync: begin, apply writes (null = delete), commit as sN. */
export async function sync(
  fs: PosixRemoteFilesystem,
  n: number,
  files: Record<string, string | null>,
  message = `sync ${n}`,
): Promise<TransactionId> {
  const tx = txId();
  await fs.begin(tx);
  for (const [p, c] of Object.entries(files)) {
    if (c === null) await fs.deleteFile(tx, p);
    else await put(fs, tx, p, c);
  }
  await fs.commit(tx, {
    snapshotId: `s${n}`,
    message,
    manifestHash: `h${n}`,
    user: 'u@example.com',
    createdAt: `2026-01-0${n}T00:00:00Z`,
  });
  return tx;
}

/**
 * Everything about a tree that a byte-identical comparison needs: for every
 * entry its type, inode, link count, size, mode, mtime, link target and a
 * content hash. Sorted by path.
 */
export async function listing(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const name of (await readdir(dir)).sort()) {
      const p = path.join(dir, name);
      const st = await lstat(p);
      const rel = path.relative(root, p);
      const base = `${rel} ino=${st.ino} nlink=${st.nlink} mode=${st.mode.toString(8)} mtime=${st.mtimeMs}`;
      if (st.isSymbolicLink()) out.push(`${base} -> ${await readlink(p)}`);
      else if (st.isDirectory()) {
        out.push(`${base} dir`);
        await walk(p);
      } else
        out.push(
          `${base} size=${st.size} sha256=${createHash('sha256')
            .update(await readFile(p))
            .digest('hex')}`,
        );
    }
  };
  await walk(root);
  return out;
}
