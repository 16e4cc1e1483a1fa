import { chmod, chown, lstat, mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { newTransactionId, type HasherFactory } from '@dsg/contracts';
import { LocalTransport, openRemote } from '@dsg/transports';
import { createAgentHasher } from '../src/hasher.js';
import { BUNDLE, hashOf, hashStream, holder, snap, tempDir } from './helpers.js';

/** Two users of one group (ids with no passwd entry: the kernel does not care), as a team's server would have them. */
const GROUP = 47100;
const ANA = 47101;
const BEN = 47102;
const isRoot = process.getuid?.() === 0;

let hasher: HasherFactory;
beforeAll(async () => (hasher = await createAgentHasher()));
let tmp: { dir: string; remove(): Promise<void> };
beforeEach(async () => (tmp = await tempDir('dsg-team-')));
afterEach(async () => tmp.remove());

/** The bundled agent as `uid` in GROUP with the team's umask 002 (the shell text is a constant; the command is its arguments). */
function agentAs(uid: number, root: string): LocalTransport {
  return new LocalTransport({
    mode: 'child',
    command: [
      'sh',
      '-c',
      'umask 002 && exec "$@"',
      'sh',
      'setpriv',
      `--reuid=${uid}`,
      `--regid=${GROUP}`,
      '--clear-groups',
      process.execPath,
      BUNDLE,
      'serve',
      '--type',
      'posix',
      '--root',
      root,
    ],
  });
}

async function syncAs(
  uid: number,
  root: string,
  n: number,
  text: string,
): Promise<{ lockMode: number; lockGid: number }> {
  const t = agentAs(uid, root);
  const c = await openRemote(t, 'proj');
  try {
    await c.lock(holder(`user-${uid}@example.org`));
    const lock = await lstat(join(root, 'proj', 'lock'));
    const tx = newTransactionId();
    await c.begin(tx);
    const d = Buffer.from(text);
    await c.writeFile(tx, `data/by-${uid}/f.txt`, Readable.from([d]), { hash: hashOf(hasher, d), size: d.length });
    await c.writeFile(tx, 'data/shared.txt', Readable.from([d]), { hash: hashOf(hasher, d), size: d.length });
    await c.commit(tx, snap(`s${n}`));
    await c.unlock();
    return { lockMode: lock.mode & 0o7777, lockGid: lock.gid };
  } finally {
    await t.end();
  }
}

describe.skipIf(!isRoot)(
  'a team: two users of one group take turns on one posix repository (setgid root, umask 002)',
  () => {
    it('each sync works for the other; directories keep the group and setgid; the lock is group-readable', async () => {
      const root = join(tmp.dir, 'repos');
      await mkdir(root);
      await chown(tmp.dir, 0, GROUP);
      await chmod(tmp.dir, 0o755);
      await chown(root, 0, GROUP);
      await chmod(root, 0o2775); // the server README's setup
      const first = await syncAs(ANA, root, 1, 'from ana');
      await syncAs(BEN, root, 2, 'from ben');
      await syncAs(ANA, root, 3, 'ana again');
      expect(first.lockMode).toBe(0o664);
      expect(first.lockGid).toBe(GROUP);
      for (const d of [
        'proj',
        'proj/snapshots',
        'proj/snapshots/s2',
        'proj/snapshots/s2/data',
        'proj/snapshots/s3/data/by-47102',
      ]) {
        const st = await lstat(join(root, d));
        expect(st.gid, d).toBe(GROUP);
        expect(st.mode & 0o2000, `${d} setgid`).toBe(0o2000);
      }
      // snapshots stay sealed: no write bit anywhere
      const s2 = await lstat(join(root, 'proj/snapshots/s2/data/shared.txt'));
      expect(s2.mode & 0o222).toBe(0);
      expect(s2.mode & 0o040).toBe(0o040); // the group can read what another member wrote
      expect((await readdir(join(root, 'proj'))).sort()).toEqual(['current', 'snapshots']);
      const t = agentAs(BEN, root);
      const c = await openRemote(t, 'proj');
      try {
        expect((await c.listSnapshots()).map((s) => s.snapshotId)).toEqual(['s1', 's2', 's3']);
        expect((await hashStream(hasher, await c.readFile('data/shared.txt'))).hash).toBe(
          hashOf(hasher, Buffer.from('ana again')),
        );
        expect((await hashStream(hasher, await c.readSnapshotFile('s2', 'data/shared.txt'))).hash).toBe(
          hashOf(hasher, Buffer.from('from ben')),
        );
      } finally {
        await t.end();
      }
    });
  },
);
