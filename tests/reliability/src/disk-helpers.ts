/**
 * Helpers of the disk-full tests (issue 10 item 4): small tmpfs mounts (we
 * run as root) and a tiny zfs-fuse pool whose image lives on its own roomy
 * tmpfs — if the filesystem UNDER a zfs-fuse image fills, zfs-fuse blocks
 * forever; the pool itself being full (ENOSPC inside ZFS) is what we test.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { retrySyncWhileBusy, type TestParent } from '@dsg/testenv';

const run = (cmd: string, args: string[]): string =>
  execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

/** Retry `fn` while it fails with "busy" (testenv's one rule); a failure names what was tried. */
function retryBusy(fn: () => void, what: string): void {
  try {
    retrySyncWhileBusy(fn);
  } catch (e) {
    throw new Error(
      `${what}: ${String((e as { stderr?: string }).stderr ?? '')} ${e instanceof Error ? e.message : String(e)}`,
    );
  }
}

export interface Tmpfs {
  dir: string;
  /** grow or shrink it (mount -o remount,size=…) */
  resize(size: string): void;
  unmount(): void;
}

/** A tmpfs of `size` (e.g. '8m') at a fresh directory. */
export function mountTmpfs(size: string, label: string): Tmpfs {
  const dir = mkdtempSync(path.join(os.tmpdir(), `dsg-full-${label}-`));
  run('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0755`, 'tmpfs', dir]);
  let mounted = true;
  return {
    dir,
    resize: (s) => void run('mount', ['-o', `remount,size=${s}`, dir]),
    unmount: () => {
      if (!mounted) return;
      retryBusy(() => run('umount', [dir]), `umount ${dir}`);
      mounted = false;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface TinyPool {
  pool: string;
  /** a parent dataset under the pool, in the shape the backends take */
  parent: TestParent;
  destroy(): void;
}

/**
 * A zfs-fuse pool of `sizeMiB` (64 is zfs's minimum vdev size) on a sparse
 * image on its own tmpfs with room for the whole image, plus a parent
 * dataset for repositories. Unique name; destroy() retries while busy.
 */
export function tinyPool(sizeMiB = 64): TinyPool {
  const host = mountTmpfs(`${sizeMiB * 2}m`, 'zimg');
  const pool = `dsgfull${randomBytes(3).toString('hex')}`;
  const img = path.join(host.dir, 'pool.img');
  const mnt = path.join(host.dir, 'mnt');
  mkdirSync(mnt);
  run('truncate', ['-s', `${sizeMiB}M`, img]);
  let created = false;
  const destroy = (): void => {
    if (created) {
      retryBusy(() => run('zpool', ['destroy', '-f', pool]), `zpool destroy ${pool}`);
      created = false;
    }
    host.unmount();
  };
  try {
    run('zpool', ['create', '-f', '-m', mnt, pool, img]);
    created = true;
    const dataset = `${pool}/repos`;
    run('zfs', ['create', dataset]);
    const mountpoint = run('zfs', ['get', '-H', '-o', 'value', 'mountpoint', dataset]).trim();
    const parent: TestParent = {
      dataset,
      mountpoint,
      destroy: () => retryBusy(() => run('zfs', ['destroy', '-r', '-f', dataset]), `zfs destroy ${dataset}`),
    };
    return { pool, parent, destroy };
  } catch (e) {
    destroy();
    throw e;
  }
}
