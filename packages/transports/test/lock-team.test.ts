import { spawnSync } from 'node:child_process';
import { chmod, chown, lstat, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

/** Two users of one group (ids without a passwd entry). */
const GROUP = 47200;
const ANA = 47201;
const BEN = 47202;
const fixture = fileURLToPath(new URL('./fixtures/lock-as.mjs', import.meta.url));
const isRoot = process.getuid?.() === 0;

function lockAs(
  uid: number,
  file: string,
  what: 'die' | 'take',
  user: string,
): { ok: boolean; tookOver?: boolean; code?: string; message?: string; hint?: string } {
  const r = spawnSync(
    'sh',
    [
      '-c',
      'umask 002 && exec "$@"',
      'sh',
      'setpriv',
      `--reuid=${uid}`,
      `--regid=${GROUP}`,
      '--clear-groups',
      process.execPath,
      fixture,
      file,
      what,
      user,
    ],
    { encoding: 'utf8' },
  );
  expect(r.stderr).toBe('');
  return JSON.parse(r.stdout) as ReturnType<typeof lockAs>;
}

let base: string;
beforeEach(async () => {
  base = await mkdtemp(join(tmpdir(), 'dsg-lock-team-'));
  await chmod(base, 0o755);
});
afterEach(async () => rm(base, { recursive: true, force: true }));

describe.skipIf(!isRoot)('the lock in a team directory (two users, one group, umask 002)', () => {
  it('setgid 2775: the lock is group-readable, and another member takes a stale lock over', async () => {
    const dir = join(base, 'locks');
    await mkdir(dir);
    await chown(dir, 0, GROUP);
    await chmod(dir, 0o2775);
    const file = join(dir, '.proj.dsg-lock');
    expect(lockAs(ANA, file, 'die', 'ana')).toEqual({ ok: true, tookOver: false });
    const st = await lstat(file);
    expect([st.mode & 0o777, st.uid, st.gid]).toEqual([0o664, ANA, GROUP]);
    expect(lockAs(BEN, file, 'take', 'ben')).toEqual({ ok: true, tookOver: true });
  });

  it('sticky 3775 (recommended): nobody else can delete a live lock, and a stale one of another member is a clear error naming who can', async () => {
    const dir = join(base, 'locks');
    await mkdir(dir);
    await chown(dir, 0, GROUP);
    await chmod(dir, 0o3775);
    const file = join(dir, '.proj.dsg-lock');
    expect(lockAs(ANA, file, 'die', 'ana')).toEqual({ ok: true, tookOver: false });
    const r = lockAs(BEN, file, 'take', 'ben');
    expect(r).toMatchObject({ ok: false, code: 'STALE_LOCK' });
    expect(r.message).toMatch(/is stale .* belongs to ana.*sticky directory/);
    expect(r.hint).toMatch(/Ask ana to run any dsg command.*or ask an administrator to remove/);
    expect((await lstat(file)).uid).toBe(ANA); // still there, untouched
    expect(lockAs(ANA, file, 'take', 'ana')).toEqual({ ok: true, tookOver: true }); // its owner takes it over
  });
});
