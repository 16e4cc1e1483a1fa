import { createHash } from 'node:crypto';
import { lstat, mkdir, mkdtemp, readFile, readdir, readlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import type { ByteStream, HasherFactory, StreamHasher } from '@dsg/contracts';

/** A stand-in for the injected xxh3 hasher (a lower component): sha1 cut to 16 hex digits. */
export const testHasher: HasherFactory = (): StreamHasher => {
  const h = createHash('sha1');
  return { update: (c) => void h.update(c), digest: () => h.digest('hex').slice(0, 16) };
};
export const hashOf = (s: string | Uint8Array): string => createHash('sha1').update(s).digest('hex').slice(0, 16);

export function bytes(s: string | Uint8Array): ByteStream {
  return Readable.from([typeof s === 'string' ? Buffer.from(s) : s]);
}

export async function tempProject(files: Record<string, string> = {}): Promise<string> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'dsg-clientfs-'));
  for (const [p, c] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(root, p)), { recursive: true });
    await writeFile(path.join(root, p), c);
  }
  return root;
}

/** Everything under dir except the given top-level names: path → content or `-> target`. */
export async function tree(dir: string, skip: string[] = ['.dsg']): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  async function walk(d: string, rel: string): Promise<void> {
    for (const name of (await readdir(d)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      if (!rel && skip.includes(name)) continue;
      const full = path.join(d, name);
      const st = await lstat(full);
      if (st.isDirectory()) await walk(full, r);
      else if (st.isSymbolicLink()) out[r] = `-> ${await readlink(full)}`;
      else out[r] = await readFile(full, 'utf8');
    }
  }
  await walk(dir, '');
  return out;
}

export async function exists(p: string): Promise<boolean> {
  try {
    await lstat(p);
    return true;
  } catch {
    return false;
  }
}
