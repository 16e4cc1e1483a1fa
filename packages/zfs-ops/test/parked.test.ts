// Parked content on the real pool: a rollback copies the verified uploads out
// of the work dataset before destroying it, the next transaction places them
// without receiving them again, and nothing parked is trusted unverified.
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { NotFoundError, PARKED_TTL_MS, ValidationError } from '@dsg/contracts';
import { freshParent, listAll, requireZfs, type TestParent } from '@dsg/testenv';
import { zfsHost, zfsParkedDirName, ZfsRemoteFilesystem, type ParkedOptions } from '../src/index.js';
import { bytes, hashOf, info, readAll, testHasher, tx } from './helpers.js';

const env = requireZfs();

describe.skipIf(!env)('parked content on the real pool', () => {
  const parents: TestParent[] = [];
  afterEach(() => {
    while (parents.length) parents.pop()!.destroy();
  });
  const setup = (): { p: TestParent; make: (o?: ParkedOptions) => ZfsRemoteFilesystem; dir: string } => {
    const p = freshParent(env!, 'parked');
    parents.push(p);
    return {
      p,
      make: (o = {}) =>
        new ZfsRemoteFilesystem({
          parent: p.dataset,
          repo: 'repo',
          mountpoint: p.mountpoint,
          hasher: testHasher,
          ...o,
        }),
      dir: path.join(p.mountpoint, zfsParkedDirName('repo')),
    };
  };
  const put = (fs: ZfsRemoteFilesystem, t: ReturnType<typeof tx>, rel: string, s: string | Uint8Array) =>
    fs.writeFile(t, rel, bytes(s), { hash: hashOf(s), size: Buffer.byteLength(s) });

  const A = 'the first upload of an interrupted sync';
  const B = 'the second one';

  async function initRepo(fs: ZfsRemoteFilesystem): Promise<void> {
    const t = tx();
    await fs.begin(t);
    await put(fs, t, 'input/a.txt', 'committed');
    await fs.commit(t, info(1));
  }

  it('a rollback parks a 1 MiB upload out of the work dataset; the next sync places it and the commit drops it', async () => {
    const { p, make, dir } = setup();
    const fs = make();
    await initRepo(fs);
    const big = randomBytes(1024 * 1024);
    const t = tx();
    await fs.begin(t);
    await put(fs, t, 'input/big.bin', big);
    await put(fs, t, 'input/gone.txt', A);
    await fs.deleteFile(t, 'input/gone.txt'); // deleted again: nothing of it to park
    await put(fs, t, 'input/replaced.txt', A);
    await put(fs, t, 'input/replaced.txt', B); // only what the path holds last
    await fs.writeLink(t, 'input/linked', 'a.txt');
    expect((await fs.rollback(t)).leftovers).toEqual([]);
    expect(listAll(p.dataset).join('\n')).not.toMatch(/-sync-|sync-temp/); // the work dataset is gone
    expect(await fs.parkedContent()).toEqual([hashOf(big), hashOf(B)].sort());
    expect(statSync(path.join(dir, hashOf(big))).size).toBe(big.length);
    expect(readdirSync(dir).sort()).toEqual([hashOf(big), hashOf(B)].sort()); // no temp file left
    // in no snapshot and no listing
    expect(await fs.readFile('input/big.bin')).toBeNull();
    const host = zfsHost({ parent: p.dataset, mountpoint: p.mountpoint, hasher: testHasher });
    expect(await host.list()).toEqual(['repo']);

    const t2 = tx();
    await fs.begin(t2);
    expect(await fs.copyParked(t2, 'input/big.bin', { hash: hashOf(big), size: big.length })).toEqual({
      size: big.length,
    });
    await fs.commit(t2, info(2));
    const placed = await fs.readFile('input/big.bin');
    const parts: Uint8Array[] = [];
    for await (const c of placed!) parts.push(c);
    expect(Buffer.concat(parts).equals(big)).toBe(true);
    expect(await fs.parkedContent()).toEqual([hashOf(B)]);
  });

  it('survives a new agent: recover() keeps it, and the new instance places it', async () => {
    const { make } = setup();
    const first = make();
    await initRepo(first);
    const t = tx();
    await first.begin(t);
    await put(first, t, 'input/b.txt', B);
    await first.rollback(t);
    const fs = make();
    expect((await fs.recover()).leftovers).toEqual([]);
    expect(await fs.parkedContent()).toEqual([hashOf(B)]);
    const t2 = tx();
    const { workPath } = await fs.begin(t2);
    await fs.copyParked(t2, 'input/again.txt', { hash: hashOf(B) });
    expect(readFileSync(path.join(workPath, 'input/again.txt'), 'utf8')).toBe(B);
    await fs.rollback(t2);
  });

  it('expires: past the TTL it is no longer offered, and the next begin removes it', async () => {
    const { make, dir } = setup();
    const fs = make();
    await initRepo(fs);
    const t = tx();
    await fs.begin(t);
    await put(fs, t, 'input/b.txt', B);
    await fs.rollback(t);
    expect(await make().parkedContent()).toEqual([hashOf(B)]);
    expect(await make({ parkedTtlMs: 1000, now: () => Date.now() + 2000 }).parkedContent()).toEqual([]);
    const later = make({ now: () => Date.now() + PARKED_TTL_MS + 60_000 });
    expect(await later.parkedContent()).toEqual([]);
    const t2 = tx();
    await later.begin(t2);
    await expect(later.copyParked(t2, 'input/b.txt', { hash: hashOf(B) })).rejects.toBeInstanceOf(NotFoundError);
    expect(existsSync(dir)).toBe(false);
    await later.rollback(t2);
  });

  it('a damaged parked file is refused and removed; a wrong size keeps it; names are hashes only', async () => {
    const { make, dir } = setup();
    const fs = make();
    await initRepo(fs);
    const t = tx();
    await fs.begin(t);
    await put(fs, t, 'input/a.txt', A);
    await put(fs, t, 'input/b.txt', B);
    await fs.rollback(t);
    writeFileSync(path.join(dir, hashOf(A)), 'not what its name says');
    const t2 = tx();
    const { workPath } = await fs.begin(t2);
    await expect(fs.copyParked(t2, 'input/a.txt', { hash: hashOf(A) })).rejects.toMatchObject({
      code: 'HASH_MISMATCH',
    });
    expect(await fs.parkedContent()).toEqual([hashOf(B)]);
    await expect(fs.copyParked(t2, 'input/b.txt', { hash: hashOf(B), size: B.length + 1 })).rejects.toMatchObject({
      code: 'HASH_MISMATCH',
    });
    expect(await fs.parkedContent()).toEqual([hashOf(B)]);
    for (const hash of ['../../x', `../${zfsParkedDirName('repo')}/${hashOf(B)}`, '']) {
      await expect(fs.copyParked(t2, 'input/x.txt', { hash })).rejects.toBeInstanceOf(ValidationError);
    }
    await expect(fs.copyParked(tx(), 'input/b.txt', { hash: hashOf(B) })).rejects.toBeInstanceOf(NotFoundError);
    expect(await readAll(await fs.readFile('input/a.txt'))).toBe('committed');
    for (const rel of ['input/b.txt', 'input/x.txt']) expect(existsSync(path.join(workPath, rel))).toBe(false);
    await fs.rollback(t2);
  });
});
