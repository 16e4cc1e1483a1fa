import { spawnSync } from 'node:child_process';
import { chmod, chown, mkdir, mkdtemp, readdir, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { scanProject, type ScanOptions } from '../src/index.js';

// The walker on the real disk: deep and wide trees, links of every kind, unreadable directories.
const here = path.dirname(fileURLToPath(import.meta.url));
const tmpDirs: string[] = [];
afterAll(async () => {
  for (const d of tmpDirs) await rm(d, { recursive: true, force: true });
});
async function tempRoot(): Promise<string> {
  const d = await mkdtemp(path.join(os.tmpdir(), 'dsg-walk-'));
  tmpDirs.push(d);
  return d;
}
const OLD = new Date('2025-06-01T17:11:12Z');
async function put(root: string, rel: string, content = ''): Promise<void> {
  const full = path.join(root, rel);
  await mkdir(path.dirname(full), { recursive: true });
  await writeFile(full, content);
  await utimes(full, OLD, OLD);
}

/** Every regular file and link under `dir`, by an independent walk (readdir's own recursion). */
async function allPaths(root: string, dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const d of await readdir(path.join(root, dir), { withFileTypes: true, recursive: true })) {
    if (d.isFile() || d.isSymbolicLink()) out.push(path.relative(root, path.join(d.parentPath, d.name)));
  }
  return out.sort();
}

describe('the walker on a real disk', () => {
  it('finds a file 120 directories deep', async () => {
    const root = await tempRoot();
    const deep = `input/${Array.from({ length: 120 }, (_, i) => `l${i}`).join('/')}/bottom.txt`;
    await put(root, deep, 'deep');
    await put(root, 'input/top.txt', 'top');
    const { manifest, warnings } = await scanProject({ root, dataDirs: ['input'], user: 'u' });
    expect(warnings).toEqual([]);
    expect([...manifest.entries.keys()]).toEqual([deep, 'input/top.txt']);
  });

  it('finds every file of a wide tree (4,000 in one directory, 60 directories of 25), the same in both I/O modes', async () => {
    const root = await tempRoot();
    await mkdir(path.join(root, 'input', 'wide'), { recursive: true });
    const writes: Promise<void>[] = [];
    for (let i = 0; i < 4000; i++) writes.push(writeFile(path.join(root, 'input', 'wide', `f${i}.dat`), `${i}`));
    await Promise.all(writes);
    for (let d = 0; d < 60; d++) for (let i = 0; i < 25; i++) await put(root, `input/d${d}/sub/f${i}.txt`, `${d}.${i}`);
    await put(root, 'elsewhere/input/nested.txt', 'a data dir at depth 2');
    const opts: ScanOptions = { root, dataDirs: ['input'], user: 'u' };
    const r = await scanProject(opts);
    expect(r.warnings).toEqual([]);
    expect(r.stats.files).toBe(4000 + 1500 + 1);
    const expected = [...(await allPaths(root, 'input')), ...(await allPaths(root, 'elsewhere'))];
    expect([...r.manifest.entries.keys()].sort()).toEqual(expected.sort());
    const pooled = await scanProject({ ...opts, parallelIo: true, concurrency: 4 });
    expect(pooled.manifest).toEqual(r.manifest);
  });

  it('records links (to files, to directories, dangling) without following them, and refuses the ones that escape', async () => {
    const root = await tempRoot();
    await put(root, 'input/real/a.txt', 'a');
    await put(root, 'outside/secret.txt', 's');
    await symlink('real/a.txt', path.join(root, 'input/to-file'));
    await symlink('real', path.join(root, 'input/to-dir'));
    await symlink('real/missing.txt', path.join(root, 'input/dangling'));
    await symlink('../outside/secret.txt', path.join(root, 'input/escape'));
    await symlink('/etc/passwd', path.join(root, 'input/absolute'));
    await symlink('../outside', path.join(root, 'output')); // a data directory that is a link
    await symlink('input/real', path.join(root, 'not-data-link')); // outside the data dirs: not looked at
    for (const parallelIo of [false, true]) {
      const { manifest, warnings } = await scanProject({ root, dataDirs: ['input', 'output'], user: 'u', parallelIo });
      expect([...manifest.entries.values()].map((e) => [e.path, e.type === 'link' ? e.reference : e.type])).toEqual([
        ['input/dangling', 'real/missing.txt'],
        ['input/real/a.txt', 'file'],
        ['input/to-dir', 'real'],
        ['input/to-file', 'real/a.txt'],
      ]);
      expect(warnings.map((w) => [w.path, w.kind])).toEqual([
        ['input/absolute', 'link'],
        ['input/escape', 'link'],
        ['output', 'link'],
      ]);
    }
  });

  it('an unreadable directory in the data fails the scan naming it; one outside the data is passed over', async () => {
    const root = await tempRoot();
    await put(root, 'input/ok/a.txt', 'a');
    await put(root, 'input/locked/b.txt', 'b');
    await put(root, 'src/locked/c.txt', 'c'); // not data: never read anyway
    await put(root, 'src/input/d.txt', 'd'); // a data dir under src
    await chmod(path.join(root, 'src/locked'), 0o000);
    await chmod(path.join(root, 'input/locked'), 0o000);
    let argv = [process.execPath, path.join(here, 'fixtures', 'scan-as-user.mjs'), root, 'input'];
    if (process.getuid?.() === 0) {
      // root reads any directory: scan as `nobody`
      const NOBODY = 65534;
      await chmod(root, 0o755);
      for (const d of [root, ...(await readdir(root, { recursive: true })).map((p) => path.join(root, p))])
        await chown(d, NOBODY, NOBODY);
      argv = ['setpriv', `--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', ...argv];
    }
    try {
      const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8' });
      expect(r.stderr).toBe('');
      const out = JSON.parse(r.stdout) as { code?: string; message?: string; hint?: string };
      expect(out.code).toBe('SCAN_UNREADABLE');
      expect(out.message).toContain('"input/locked"');
      expect(out.hint).toMatch(/permissions/);

      // without the locked data directory, the locked one outside the data is no error
      await chmod(path.join(root, 'input/locked'), 0o755);
      const ok = JSON.parse(spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8' }).stdout) as {
        entries: string[];
      };
      expect(ok.entries).toEqual(['input/locked/b.txt', 'input/ok/a.txt', 'src/input/d.txt']);

      // ... unless the last sync holds files beneath it (a data dir nested in the locked one):
      // passed over, they would read as deleted and the sync would delete them everywhere
      const heldBeneath = JSON.parse(
        spawnSync(argv[0]!, argv.slice(1), {
          encoding: 'utf8',
          env: { ...process.env, PREVIOUS: JSON.stringify(['src/locked/input/e.txt', 'input/ok/a.txt']) },
        }).stdout,
      ) as { code?: string; message?: string };
      expect(heldBeneath.code).toBe('SCAN_UNREADABLE');
      expect(heldBeneath.message).toContain('"src/locked"');
      // ... but not for entries out of scope beneath it (here: src/locked/c.txt, never a data file)
      const outOfScope = JSON.parse(
        spawnSync(argv[0]!, argv.slice(1), {
          encoding: 'utf8',
          env: { ...process.env, PREVIOUS: JSON.stringify(['input/ok/a.txt', 'src/locked/c.txt']) },
        }).stdout,
      ) as { code?: string; entries?: string[] };
      expect(outOfScope.code).toBeUndefined();
      expect(outOfScope.entries).toContain('input/ok/a.txt');
    } finally {
      await chmod(path.join(root, 'src/locked'), 0o755);
      await chmod(path.join(root, 'input/locked'), 0o755);
    }
  });
});
