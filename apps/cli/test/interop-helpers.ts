/**
 * The original dsg's (HRDAG/dsg 0.4.4) fixtures for the end-to-end interop
 * tests: shared/interop beside this checkout, or DSG_INTEROP_FIXTURES. A test
 * works on a writable copy (the directory tree, or the pax tar when symlinks,
 * mtimes or empty directories matter) with `__REPO_ROOT__` substituted in
 * every working copy's `.dsgconfig.yml`. The repository is the original's
 * flat tree `<repo>/<name>/` with `.dsg/` inside.
 */
import { execFileSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  lstatSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
  type Stats,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'vitest';
import { INTEROP_FIXTURES } from '@dsg/testenv';
import { statusSchema } from '../src/output/json-schemas.js';

export const FIXTURES = INTEROP_FIXTURES;
/** The same trees as a pax tar: exact mtimes, symlinks and empty directories (git keeps none of the first and last). */
export const FIXTURES_TAR = path.join(FIXTURES, '..', 'fixtures.tar.gz');

/**
 * Where the real parts are required (DSG_REQUIRE_REAL=1), missing fixtures
 * are a failure, not a silent skip. Call at the top of a test file.
 */
export function requireFixtures(names: readonly string[] = [], o: { tar?: boolean } = {}): void {
  if (process.env['DSG_REQUIRE_REAL'] !== '1') return;
  if (!existsSync(FIXTURES))
    throw new Error(`the interop fixtures are missing at ${FIXTURES} (set DSG_INTEROP_FIXTURES)`);
  for (const n of names)
    if (!existsSync(path.join(FIXTURES, n)))
      throw new Error(`the interop fixture ${n} is missing at ${FIXTURES} (set DSG_INTEROP_FIXTURES)`);
  if (o.tar && !existsSync(FIXTURES_TAR)) throw new Error(`the interop fixtures tar is missing at ${FIXTURES_TAR}`);
}

/** Directories the tests made; the test file removes them: `afterAll(removeMade)`. */
export const made: string[] = [];
export function removeMade(): void {
  for (const d of made.splice(0)) rmSync(d, { recursive: true, force: true });
}

export interface Fixture {
  dir: string;
  /** the working copy the original made the repository from */
  project: string;
  /** the repository: `<repoRoot>/<name>` */
  repo: string;
  /** the directory given to the original's `dsg init --repo-path` (`__REPO_ROOT__`) */
  repoRoot: string;
  /** the directory of another working copy beside `project/` (e.g. `project-other`) */
  other(name: string): string;
}

/**
 * A writable copy of a fixture, `__REPO_ROOT__` replaced by its repo/
 * directory in every `project*` working copy (each file's mtime kept).
 * `from: 'tar'`: extracted from the pax tar (symlinks stay symlinks, mtimes
 * exact); `'directory'`: copied from the tree git checked out.
 */
export function fixture(name: string, from: 'directory' | 'tar' = 'directory'): Fixture {
  const dir = mkdtempSync(path.join(os.tmpdir(), `dsg-interop-${name}-`));
  made.push(dir);
  if (from === 'tar') {
    // the tar holds <name>/project… and <name>/repo; GNU tar only warns about odd mtimes
    execFileSync('tar', ['xzf', FIXTURES_TAR, '-C', dir, '--strip-components=1', name], {
      stdio: ['ignore', 'ignore', 'ignore'],
    });
  } else {
    cpSync(path.join(FIXTURES, name), dir, { recursive: true, preserveTimestamps: true, verbatimSymlinks: true });
  }
  execFileSync('chmod', ['-R', 'u+w', dir]);
  const repoRoot = path.join(dir, 'repo');
  for (const wc of readdirSync(dir).filter((n) => n.startsWith('project'))) {
    const cfg = path.join(dir, wc, '.dsgconfig.yml');
    if (!existsSync(cfg)) continue;
    const st = lstatSync(cfg);
    writeFileSync(cfg, readFileSync(cfg, 'utf8').replaceAll('__REPO_ROOT__', repoRoot));
    execFileSync('touch', ['-d', st.mtime.toISOString(), cfg]);
  }
  return {
    dir,
    project: path.join(dir, 'project'),
    repo: path.join(repoRoot, name),
    repoRoot,
    other: (n) => path.join(dir, n),
  };
}

/** rel → describe(full path, lstat) of every file and link under root, the top-level `.dsg/` left out. */
export function listTree(root: string, describe: (full: string, st: Stats) => string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string): void => {
    for (const n of readdirSync(d)) {
      const full = path.join(d, n);
      const rel = path.relative(root, full);
      if (rel === '.dsg') continue;
      const st = lstatSync(full);
      if (st.isDirectory()) walk(full);
      else out[rel] = describe(full, st);
    }
  };
  walk(root);
  return out;
}

/** rel → "kind ino size mtime" of every entry (files and links), `.dsg/` left out: equal means untouched. */
export function tree(root: string): Record<string, string> {
  return listTree(root, (_full, st) => `${st.isSymbolicLink() ? 'link' : 'file'} ${st.ino} ${st.size} ${st.mtimeMs}`);
}

/** What the original's status "Everything up to date" means for dsg: nothing to do (.dsgconfig.yml is no entry: a repository without a root copy gets one with the next snapshot). */
export function expectInSync(stdout: string, head: string): void {
  const s = statusSchema.parse(JSON.parse(stdout));
  expect(s.remoteSnapshot).toBe(head);
  expect(s.clean).toBe(true);
  expect({
    upload: s.upload,
    download: s.download,
    deleteLocal: s.deleteLocal,
    deleteRemote: s.deleteRemote,
    conflicts: s.conflicts,
    invalid: s.invalidNames,
  }).toEqual({
    upload: [],
    download: [],
    deleteLocal: [],
    deleteRemote: [],
    conflicts: [],
    invalid: [],
  });
}

/** The repository is still the original's flat tree (no dsg snapshot layout, no leftovers), at `head`. */
export function expectFlat(repo: string, head: string): void {
  expect(existsSync(path.join(repo, 'current'))).toBe(false);
  expect(existsSync(path.join(repo, 'snapshots'))).toBe(false);
  expect(existsSync(path.join(repo, 'lock'))).toBe(false);
  expect(existsSync(path.join(repo, '.dsg', 'tx'))).toBe(false);
  const md = (
    JSON.parse(readFileSync(path.join(repo, '.dsg', 'last-sync.json'), 'utf8')) as { metadata: { snapshot_id: string } }
  ).metadata;
  expect(md.snapshot_id).toBe(head);
}
