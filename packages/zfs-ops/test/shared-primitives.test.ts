import { describe, expect, it, afterEach } from 'vitest';
import { ValidationError } from '@dsg/contracts';
import { freshParent, requireZfs, type TestParent } from '@dsg/testenv';
import { ZfsRemoteFilesystem } from '../src/index.js';
import { bytes, hashOf, info, readAll, testHasher, tx } from './helpers.js';

const env = requireZfs();

// The ZFS backend now writes and reads with the same primitives as the posix ones (@dsg/contracts).
describe.skipIf(!env)('ZFS backend on the shared primitives', () => {
  const parents: TestParent[] = [];
  afterEach(() => {
    while (parents.length) parents.pop()!.destroy();
  });
  const fsOf = (): ZfsRemoteFilesystem => {
    const p = freshParent(env!, 'zprim');
    parents.push(p);
    return new ZfsRemoteFilesystem({ parent: p.dataset, repo: 'repo', mountpoint: p.mountpoint, hasher: testHasher });
  };

  it('uploads a file whose name is NAME_MAX bytes of multibyte characters (its temp name used to be too long)', async () => {
    const fs = fsOf();
    const name = `data/${'€'.repeat(85)}`; // 255 bytes
    const t = tx();
    await fs.begin(t);
    await fs.writeFile(t, name, bytes('long'), { hash: hashOf('long'), size: 4 });
    await fs.commit(t, info(1));
    expect(await readAll(await fs.readFile(name))).toBe('long');
  });

  it('never reads through a symlinked parent, even one pointing inside the tree (as the posix backends)', async () => {
    const fs = fsOf();
    const t = tx();
    await fs.begin(t);
    await fs.writeFile(t, 'data/a.txt', bytes('alpha'), { hash: hashOf('alpha'), size: 5 });
    await fs.writeLink(t, 'alias', 'data');
    await fs.commit(t, info(1));
    expect(await readAll(await fs.readFile('data/a.txt'))).toBe('alpha');
    await expect(fs.readFile('alias/a.txt')).rejects.toBeInstanceOf(ValidationError);
    await expect(fs.readFile('alias/a.txt')).rejects.toThrow(/"alias" is a symlink/);
  });

  it('refuses a malformed transaction id with TX_ID before any zfs call', async () => {
    const fs = fsOf();
    await expect(fs.begin('../../x' as ReturnType<typeof tx>)).rejects.toMatchObject({ code: 'TX_ID' });
    await expect(fs.begin('../../x' as ReturnType<typeof tx>)).rejects.toBeInstanceOf(ValidationError);
  });
});
