// Deterministic data sets (same seed → same bytes), generated on the real disk.
import { mkdir, open, writeFile } from 'node:fs/promises';
import path from 'node:path';

/** mulberry32: a tiny seeded PRNG; reproducibility matters here, not quality. */
export function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Fill `size` bytes from the PRNG, 64 KiB at a time (bounded memory). */
async function writeRandomFile(file, size, rnd) {
  const fh = await open(file, 'w');
  try {
    const chunk = Buffer.alloc(Math.min(size, 1 << 16));
    let left = size;
    while (left > 0) {
      const n = Math.min(left, chunk.length);
      for (let i = 0; i < n; i += 4) chunk.writeUInt32LE((rnd() * 4294967296) >>> 0, Math.min(i, chunk.length - 4));
      await fh.write(chunk, 0, n);
      left -= n;
    }
  } finally {
    await fh.close();
  }
}

/** Box–Muller normal → log-normal sizes around a median. */
function logNormal(rnd, median, sigma) {
  const u = Math.max(rnd(), 1e-12),
    v = rnd();
  return Math.round(median * Math.exp(sigma * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v)));
}

/** `research`: N files in ~N/50 dirs, log-normal sizes (median ~16 KiB), a few large files. */
export async function makeResearch(root, { files, largeFiles, largeSize, seed = 1 }) {
  const rnd = prng(seed);
  const dirs = Math.max(1, Math.round(files / 50));
  let total = 0;
  for (let i = 0; i < files; i++) {
    const dir = path.join(root, i % 2 ? 'input' : 'output', `d${String(i % dirs).padStart(3, '0')}`);
    await mkdir(dir, { recursive: true });
    const size = i < largeFiles ? largeSize : Math.min(logNormal(rnd, 16 << 10, 1.2), 8 << 20);
    await writeRandomFile(path.join(dir, `f${i}.bin`), size, rnd);
    total += size;
  }
  return { files, bytes: total };
}

/** `many-small`: N files of 1 KiB in dirs of 1,000. */
export async function makeManySmall(root, { files, seed = 2 }) {
  const rnd = prng(seed);
  const buf = Buffer.alloc(1024);
  for (let i = 0; i < files; i++) {
    const dir = path.join(root, 'input', `d${Math.floor(i / 1000)}`);
    if (i % 1000 === 0) await mkdir(dir, { recursive: true });
    for (let j = 0; j < 1024; j += 4) buf.writeUInt32LE((rnd() * 4294967296) >>> 0, j);
    await writeFile(path.join(dir, `s${i}.dat`), buf);
  }
  return { files, bytes: files * 1024 };
}

/** `one-large`: one file of `size` bytes. */
export async function makeOneLarge(root, { size, seed = 3 }) {
  await mkdir(path.join(root, 'input'), { recursive: true });
  await writeRandomFile(path.join(root, 'input', 'large.bin'), size, prng(seed));
  return { files: 1, bytes: size };
}

/**
 * `files` files of `size` bytes each in `input/<dir>/`, plus a small
 * `input/readme.txt` (w8 renames the directory, w9 syncs it into a
 * repository that holds only the readme).
 */
export async function makeEqualFiles(root, { dir, files, size, seed }) {
  const rnd = prng(seed);
  await mkdir(path.join(root, 'input', dir), { recursive: true });
  await writeFile(path.join(root, 'input', 'readme.txt'), `${files} files of ${size} bytes\n`);
  for (let i = 0; i < files; i++)
    await writeRandomFile(path.join(root, 'input', dir, `f${String(i).padStart(4, '0')}.bin`), size, rnd);
  return { files, bytes: files * size, dir };
}

/** Change `count` files of many-small deterministically (new content, same size). */
export async function touchManySmall(root, { count, round, files }) {
  const rnd = prng(1000 + round);
  for (let k = 0; k < count; k++) {
    const i = Math.floor(rnd() * files);
    const buf = Buffer.alloc(1024, (round * 31 + k) & 0xff);
    await writeFile(path.join(root, 'input', `d${Math.floor(i / 1000)}`, `s${i}.dat`), buf);
  }
}
