import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { freshParent, requireZfs } from '@dsg/testenv';
import {
  cleanSchema,
  listFilesSchema,
  listReposSchema,
  snapmountSchema,
  syncSchema,
  validateFileSchema,
  validateSnapshotSchema,
} from '../src/output/json-schemas.js';
import { BIN, dsg, listing, ok, sandbox, write } from './helpers.js';

function setup(): { env: NodeJS.ProcessEnv; dir: string; root: string } {
  const sb = sandbox();
  const dir = path.join(sb.dir, 'p');
  write(path.join(dir, 'input', 'a.csv'), 'a\n');
  write(path.join(dir, 'output', 'sub', 'b.txt'), 'b\n');
  const root = mkdtempSync(path.join(os.tmpdir(), 'dsg-cli-more-'));
  ok(dsg(dir, sb.env, 'init', '--repo-type', 'posix', '--repo-path', root, '--repo-name', 'p'));
  return { env: sb.env, dir, root };
}

describe('the other commands, through the built binary', () => {
  it('list-repos, list-files, validate-file, validate-snapshot, clean, snapmount with --json', () => {
    const { env, dir, root } = setup();
    expect(
      listReposSchema.parse(JSON.parse(ok(dsg(dir, env, '--json', 'list-repos', '--path', root)).stdout)).repositories,
    ).toEqual(['p']);
    const lf = listFilesSchema.parse(JSON.parse(ok(dsg(dir, env, '--json', 'list-files', '--path', 'output')).stdout));
    expect(lf).toMatchObject({
      snapshotId: 's1',
      entries: [{ path: 'output/sub/b.txt', size: 2, user: 'ana@example.org' }],
    });
    expect(
      validateFileSchema.parse(JSON.parse(ok(dsg(dir, env, '--json', 'validate-file', 'input/a.csv')).stdout)),
    ).toMatchObject({ ok: true, inManifest: true });
    write(path.join(dir, 'input', 'a.csv'), 'changed\n');
    const vf = dsg(dir, env, '--json', 'validate-file', 'input/a.csv');
    expect(vf.code).toBe(1);
    expect(validateFileSchema.parse(JSON.parse(vf.stdout)).ok).toBe(false);
    expect(
      validateSnapshotSchema.parse(JSON.parse(ok(dsg(dir, env, '--json', 'validate-snapshot')).stdout)),
    ).toMatchObject({ snapshotId: 's1', ok: true, files: 2 }); // input/a.csv, output/sub/b.txt: .dsgconfig.yml is no entry
    const cl = cleanSchema.parse(JSON.parse(ok(dsg(dir, env, '--json', 'clean')).stdout));
    expect(cl).toMatchObject({ dryRun: true, target: 'all' });
    const m = snapmountSchema.parse(JSON.parse(ok(dsg(dir, env, '--json', 'snapmount', '--snapshot', 's1')).stdout));
    expect(listing(m.mountpoint)).toHaveProperty(['input/a.csv']);
    // a snapmount outlives its command: a later run undoes it; a path that is no snapshot of this repository is refused
    const other = dsg(dir, env, 'snapmount', '--unmount', root);
    expect(other.code).toBe(1);
    expect(other.stderr).toMatch(/no snapshot of .* is mounted at /);
    expect(ok(dsg(dir, env, 'snapmount', '--unmount', m.mountpoint)).stdout).toContain(`unmounted ${m.mountpoint}`);
  });

  it('sync --dry-run changes nothing; nothing to do says so; --quiet prints nothing', () => {
    const { env, dir, root } = setup();
    write(path.join(dir, 'input', 'new.csv'), 'n\n');
    // The stat cache is a rebuildable speed-up that every scan may refresh (like git's
    // index on `git status`); whether it is rewritten depends on how old the files are,
    // so it is left out of "changes nothing" — everything else must be byte-identical.
    // the caches a read may refresh: the stat cache, and the last sync's mirror (made on its first read)
    const notCache = (rel: string): boolean =>
      rel === path.join('.dsg', 'stat-cache.json') || rel === path.join('.dsg', 'last-sync.bin');
    const before = [listing(dir, notCache), listing(root)];
    const dry = syncSchema.parse(JSON.parse(ok(dsg(dir, env, '--json', 'sync', '--dry-run')).stdout));
    expect(dry).toMatchObject({ dryRun: true, committed: false, counts: { uploaded: 1 } });
    expect([listing(dir, notCache), listing(root)]).toEqual(before);
    const q = ok(dsg(dir, env, '-q', 'sync'));
    expect(q.stdout + q.stderr).toBe('');
    expect(ok(dsg(dir, env, 'sync')).stdout).toMatch(/already up to date with s2; nothing to do/);
    expect(ok(dsg(dir, env, 'sync', '--normalize')).stdout).toMatch(/already up to date with s2; nothing to do/); // no NFD name: nothing renamed
  });

  it('colors on a terminal, none under NO_COLOR or when piped', () => {
    const { env, dir } = setup();
    write(path.join(dir, 'input', 'x.csv'), 'x\n');
    const tty = (extra: NodeJS.ProcessEnv): string => {
      const e: NodeJS.ProcessEnv = { ...env, TERM: 'xterm', ...extra };
      if (extra['NO_COLOR'] === undefined) delete e['NO_COLOR'];
      return spawnSync('script', ['-qfec', `node '${BIN}' status`, '/dev/null'], { cwd: dir, env: e, encoding: 'utf8' })
        .stdout;
    };
    // eslint-disable-next-line no-control-regex
    const ESC = /\u001b\[3\dm/;
    expect(tty({})).toMatch(ESC);
    expect(tty({ NO_COLOR: '1' })).not.toMatch(ESC);
    const piped = spawnSync('node', [BIN, 'status'], {
      cwd: dir,
      env: { ...env, NO_COLOR: undefined },
      encoding: 'utf8',
    }).stdout;
    expect(piped).not.toMatch(ESC);
    expect(piped).toContain('input/x.csv');
  });

  it('validate-config --fix-legacy rewrites the ancestor form; the legacy form works as is', () => {
    const sb = sandbox();
    const root = mkdtempSync(path.join(os.tmpdir(), 'dsg-cli-legacy-'));
    const dir = path.join(sb.dir, 'old');
    const legacy = `name: old\ntransport: ssh\nssh:\n  host: localhost\n  path: ${root}\n  name: old\n  type: xfs\nproject:\n  data_dirs: [input]\n`;
    write(path.join(dir, '.dsgconfig.yml'), legacy);
    write(path.join(dir, 'input', 'a.csv'), 'a\n');
    ok(dsg(dir, sb.env, 'init'));
    const v = JSON.parse(ok(dsg(dir, sb.env, '--json', 'validate-config', '--fix-legacy')).stdout) as {
      legacy: boolean;
      fixedLegacy: boolean;
      backend: { ok: boolean };
    };
    expect(v).toMatchObject({ legacy: true, fixedLegacy: true, backend: { ok: true } });
    const again = JSON.parse(ok(dsg(dir, sb.env, '--json', 'validate-config', '--no-backend')).stdout) as {
      legacy: boolean;
    };
    expect(again.legacy).toBe(false);
    // a second working copy cloned from inside a directory holding only the (same) config
    const copy = path.join(sb.dir, 'copy');
    write(path.join(copy, '.dsgconfig.yml'), legacy);
    expect(syncSchema.parse(JSON.parse(ok(dsg(copy, sb.env, '--json', 'clone')).stdout)).snapshotId).toBe('s1');
  });
});

const zfs = requireZfs();
describe.skipIf(!zfs)('snapmount on a ZFS repository on this machine (real zfs-fuse)', () => {
  it('--mountpoint puts the read-only clone where asked; a later --unmount removes it', () => {
    const parent = freshParent(zfs!, 'cli-mnt');
    try {
      const sb = sandbox();
      const dir = path.join(sb.dir, 'p');
      write(path.join(dir, 'input', 'a.csv'), 'a\n');
      ok(
        dsg(
          dir,
          sb.env,
          'init',
          '--host',
          'localhost',
          '--repo-type',
          'zfs',
          '--pool',
          parent.dataset,
          '--repo-path',
          parent.mountpoint,
          '--repo-name',
          'm',
        ),
      );
      const want = path.join(sb.dir, 'view-s1');
      const m = snapmountSchema.parse(
        JSON.parse(ok(dsg(dir, sb.env, '--json', 'snapmount', '--snapshot', 's1', '--mountpoint', want)).stdout),
      );
      expect(m.mountpoint).toBe(want);
      expect(listing(want)).toHaveProperty(['input/a.csv']);
      ok(dsg(dir, sb.env, 'snapmount', '--unmount', want));
      expect(existsSync(path.join(want, 'input', 'a.csv'))).toBe(false);
    } finally {
      parent.destroy();
    }
  });
});
