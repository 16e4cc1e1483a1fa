import { spawnSync } from 'node:child_process';
import { chmod, chown, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const here = path.dirname(fileURLToPath(import.meta.url));
const fixture = path.join(here, 'fixtures', 'unprivileged.mjs');
const NOBODY = 65534;

describe('as an unprivileged user', () => {
  it('snapshots really refuse writes, and failed commits and recovery work on sealed directories', async () => {
    const base = await mkdtemp(path.join(os.tmpdir(), 'dsg-posix-user-'));
    try {
      let argv = [process.execPath, fixture, path.join(base, 'repo')];
      if (process.getuid?.() === 0) {
        // root ignores mode bits: run the same steps as `nobody`
        await chmod(base, 0o755);
        await chown(base, NOBODY, NOBODY);
        argv = ['setpriv', `--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', ...argv];
      }
      const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', cwd: path.join(here, '..') });
      expect(r.stderr).toBe('');
      expect(JSON.parse(r.stdout)).toEqual({
        writeSnapshotFile: 'EACCES',
        createInSnapshot: 'EACCES',
        chmodOther: 'EPERM',
        failedCommit: 'TX_COMMIT',
        rollbackLeftovers: 0,
        failedCommit2: 'TX_COMMIT',
        recoverLeftovers: 0,
        recovered: 1,
        snapshots: ['s1', 's2'],
      });
    } finally {
      await rm(base, { recursive: true, force: true });
    }
  });
});
