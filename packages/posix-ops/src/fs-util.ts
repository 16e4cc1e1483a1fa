import { chmod, lstat, open, opendir, rm } from 'node:fs/promises';
import path from 'node:path';

export function errno(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | null)?.code;
}

/** fsync a directory so the renames and new entries in it are durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Run `fn` over items with at most `limit` in flight. Hand-rolled (a dozen
 * lines) rather than a dependency: it is the only concurrency this package needs.
 */
export async function mapLimit<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++]!;
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** Every directory under (and including) dir, parents first; symlinks are not followed. */
export async function listDirs(dir: string): Promise<string[]> {
  const out: string[] = [dir];
  for (let i = 0; i < out.length; i++) {
    const d = await opendir(out[i]!);
    for await (const ent of d) if (ent.isDirectory()) out.push(path.join(out[i]!, ent.name));
  }
  return out;
}

/**
 * Remove a tree that may hold read-only directories (a sealed snapshot, or a
 * work area interrupted while being sealed). Only DIRECTORIES are made
 * writable: files may be hard links shared with live snapshots, and chmod on
 * one would change the snapshot's file. Missing is fine.
 */
export async function forceRemove(target: string): Promise<boolean> {
  let st;
  try {
    st = await lstat(target);
  } catch (e) {
    if (errno(e) === 'ENOENT') return false;
    throw e;
  }
  if (st.isDirectory()) for (const d of await listDirs(target)) await chmod(d, 0o755);
  await rm(target, { recursive: true, force: true });
  return true;
}
