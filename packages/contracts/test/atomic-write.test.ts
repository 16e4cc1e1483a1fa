import { lstat, mkdir, mkdtemp, readFile, readdir, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { fsyncDir, NAME_MAX, tempNameBeside, writeFileAtomic } from '../src/index.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'dsg-atomic-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('tempNameBeside', () => {
  it('is a fresh hidden name in the same directory', () => {
    const a = tempNameBeside(path.join(dir, 'sub', 'f.csv'));
    const b = tempNameBeside(path.join(dir, 'sub', 'f.csv'));
    expect(path.dirname(a)).toBe(path.join(dir, 'sub'));
    expect(path.basename(a)).toMatch(/^\.dsg-tmp-[0-9a-f]{12}$/);
    expect(a).not.toBe(b);
  });

  it('is a valid name beside a target of NAME_MAX bytes (multibyte too)', async () => {
    const name = '€'.repeat(Math.floor(NAME_MAX / 3)); // 255 bytes
    expect(Buffer.byteLength(name)).toBe(NAME_MAX);
    const tmp = tempNameBeside(path.join(dir, name));
    expect(Buffer.byteLength(path.basename(tmp))).toBeLessThanOrEqual(NAME_MAX);
    await writeFile(tmp, 'x'); // the filesystem takes it
    await writeFileAtomic(path.join(dir, name), 'long');
    expect(await readFile(path.join(dir, name), 'utf8')).toBe('long');
  });
});

describe('writeFileAtomic', () => {
  it('creates and replaces a file, leaving no temp file behind', async () => {
    const f = path.join(dir, 'a.json');
    await writeFileAtomic(f, 'one');
    await writeFileAtomic(f, new TextEncoder().encode('two'));
    expect(await readFile(f, 'utf8')).toBe('two');
    expect(await readdir(dir)).toEqual(['a.json']);
  });

  it('takes the mode before the umask (default 0o666)', async () => {
    const umask = process.umask();
    await writeFileAtomic(path.join(dir, 'ro'), 'x', { mode: 0o444 });
    await writeFileAtomic(path.join(dir, 'rw'), 'x');
    expect((await lstat(path.join(dir, 'ro'))).mode & 0o777).toBe(0o444 & ~umask);
    expect((await lstat(path.join(dir, 'rw'))).mode & 0o777).toBe(0o666 & ~umask);
  });

  it('replaces a symlink at the target with a file, never writing through it', async () => {
    const outside = path.join(dir, 'outside');
    await writeFile(outside, 'keep');
    await symlink(outside, path.join(dir, 'link'));
    await writeFileAtomic(path.join(dir, 'link'), 'new');
    expect((await lstat(path.join(dir, 'link'))).isFile()).toBe(true);
    expect(await readFile(outside, 'utf8')).toBe('keep');
  });

  it('fails when the parent is missing (the caller makes it)', async () => {
    await expect(writeFileAtomic(path.join(dir, 'no', 'f'), 'x')).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await readdir(dir)).toEqual([]);
  });

  it('removes its temp file when the rename fails, and the target is untouched', async () => {
    await mkdir(path.join(dir, 'd'));
    await writeFile(path.join(dir, 'd', 'inner'), 'x');
    await expect(writeFileAtomic(path.join(dir, 'd'), 'x')).rejects.toThrow(); // a non-empty directory is not replaced
    expect(await readdir(dir)).toEqual(['d']);
    expect(await readdir(path.join(dir, 'd'))).toEqual(['inner']);
  });

  it('writes content given in chunks, sync or async, as one file', async () => {
    const target = path.join(dir, 'big.json');
    const parts = [Buffer.from('{"a":'), Buffer.alloc(300_000, 0x31), Buffer.from('}')];
    await writeFileAtomic(target, parts);
    expect((await readFile(target)).equals(Buffer.concat(parts))).toBe(true);
    await writeFileAtomic(
      target,
      (async function* () {
        await Promise.resolve();
        yield Buffer.from('x');
        yield new Uint8Array([0x79, 0x7a]);
      })(),
    );
    expect(await readFile(target, 'utf8')).toBe('xyz');
    expect(await readdir(dir)).toEqual(['big.json']);
  });

  it('leaves the old file and no temp file when the chunks fail midway', async () => {
    const target = path.join(dir, 'a.json');
    await writeFileAtomic(target, 'old');
    const failing = (function* () {
      yield Buffer.from('new, part');
      throw new Error('serializer failed');
    })();
    await expect(writeFileAtomic(target, failing)).rejects.toThrow('serializer failed');
    expect(await readFile(target, 'utf8')).toBe('old');
    expect(await readdir(dir)).toEqual(['a.json']);
  });

  it('leaves an existing symlink beside the target alone', async () => {
    await symlink('a.json', path.join(dir, 'alias'));
    await writeFileAtomic(path.join(dir, 'a.json'), 'x');
    expect(await readlink(path.join(dir, 'alias'))).toBe('a.json');
  });
});

describe('fsyncDir', () => {
  it('syncs a directory', async () => {
    await expect(fsyncDir(dir)).resolves.toBeUndefined();
  });

  it('refuses what is not a directory', async () => {
    await writeFile(path.join(dir, 'f'), 'x');
    await expect(fsyncDir(path.join(dir, 'f'))).rejects.toMatchObject({ code: 'ENOTDIR' });
    await expect(fsyncDir(path.join(dir, 'missing'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('accepts a filesystem that cannot sync a directory (EINVAL: /proc)', async () => {
    await expect(fsyncDir('/proc')).resolves.toBeUndefined();
  });
});
