/**
 * The original dsg's (HRDAG/dsg 0.4.4) task-layout and conflict-backup
 * fixtures through the BUILT dsg, each from the pax tar (symlinks and mtimes
 * exact) with `__REPO_ROOT__` substituted. The repository is the original's
 * flat tree `<repo>/<name>/`.
 *
 * task-layout: data dirs at any depth (`tasks/*\/input|output|frozen`); the
 * repository keeps non-data files init uploaded (README.md,
 * tasks/clean/Makefile, tasks/clean/src/x.py) that no later manifest lists, and
 * holds `tasks/clean/input/latest.csv` as a regular file where the head says
 * link → a.csv. None of that may be deleted or "repaired" by a sync.
 *
 * conflict-backup: the repository's input/a.csv holds bo's bytes while its
 * head (ana's s3) names ana's; ana's working copy keeps the original's
 * conflict backup; bo's working copy is at his own, different, s3.
 */
import {
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { entriesHash, hashBytes, parseManifest, type Manifest } from '@dsg/manifest';
import { dsg, ok, sandbox, type RunResult } from './helpers.js';
import {
  FIXTURES,
  FIXTURES_TAR,
  expectFlat,
  expectInSync,
  fixture,
  listTree,
  made,
  removeMade,
  requireFixtures,
  tree,
} from './interop-helpers.js';
import {
  blameSchema,
  errorDocSchema,
  logSchema,
  snapfetchSchema,
  statusSchema,
  syncSchema,
  validateChainSchema,
  validateSnapshotSchema,
} from '../src/output/json-schemas.js';

requireFixtures(['task-layout', 'conflict-backup'], { tar: true });
afterAll(removeMade);

const ANA = 'user_id: ana@example.org\nuser_name: Ana Py\n';
const BO = 'user_id: bo@example.org\nuser_name: Bo Other\n';

/** rel → "file <base64>" or "link <target>" of every file and link, `.dsg/` (top level) left out. */
function files(root: string): Record<string, string> {
  return listTree(root, (full, st) =>
    st.isSymbolicLink() ? `link ${readlinkSync(full)}` : `file ${readFileSync(full).toString('base64')}`,
  );
}

/** The repository's head: the raw JSON (entries exactly as written) and the parsed manifest. */
function head(repo: string): {
  raw: { entries: Record<string, unknown>; metadata: Record<string, unknown> };
  manifest: Manifest;
} {
  const bytes = readFileSync(path.join(repo, '.dsg', 'last-sync.json'));
  return {
    raw: JSON.parse(bytes.toString('utf8')) as { entries: Record<string, unknown>; metadata: Record<string, unknown> },
    manifest: parseManifest(bytes, 'last-sync.json'),
  };
}

/** The head's entries hash to its recorded entries_hash. */
function expectSealed(m: Manifest): void {
  expect(entriesHash(m.entries.values())).toBe(m.metadata!.entries_hash);
  expect(m.entries.size).toBe(m.metadata!.entry_count);
}

function errorOf(
  r: RunResult,
  exit = 1,
): { code: string; message: string; recoveryHint: string; details?: Record<string, unknown> } {
  expect(r.code, `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`).toBe(exit);
  const doc = errorDocSchema.parse(JSON.parse(r.stdout));
  expect(doc.exitCode).toBe(exit);
  return doc.error;
}

const RESUME = 'tasks/clean/output/r\u00e9sum\u00e9.csv'; // NFC, as the original wrote it
/** s4, the head of task-layout: its data files (latest.csv is the link → a.csv) */
const HEAD_PATHS = [
  'input/top.csv',
  'tasks/clean/input/a.csv',
  'tasks/clean/input/empty.csv',
  'tasks/clean/input/latest.csv',
  'tasks/clean/output/b.csv',
  'tasks/clean/output/my report.csv',
  'tasks/clean/output/new.csv',
  RESUME,
  'tasks/import/frozen/d.parquet',
  'tasks/import/output/e.csv',
].sort();
/** in the repository since init (s1), in no later manifest: never deleted */
const NON_DATA = ['README.md', 'tasks/clean/Makefile', 'tasks/clean/src/x.py'];
const A_CSV = 'tasks/clean/input/a.csv';

/** The repository's files outside every manifest since s1 are exactly as the original left them: same inode, size, mtime and bytes. */
function expectNonDataKept(
  repo: string,
  treeBefore: Record<string, string>,
  bytesBefore: Record<string, string>,
): void {
  const t = tree(repo);
  const b = files(repo);
  for (const p of NON_DATA) {
    expect(t[p], p).toBe(treeBefore[p]);
    expect(b[p], p).toBe(bytesBefore[p]);
  }
}

describe.skipIf(!existsSync(FIXTURES) || !existsSync(FIXTURES_TAR))(
  "the original's task-layout and conflict-backup repositories, through the built dsg",
  () => {
    it("task-layout: status, clone, log, blame, validate-chain, snapfetch; a change from a clone synced in place and into the original's working copy; nothing outside the manifests is touched", () => {
      const ana = sandbox(ANA);
      const bo = sandbox(BO);
      made.push(ana.dir, bo.dir);
      const f = fixture('task-layout', 'tar');
      const repoTree = tree(f.repo);
      const repoBytes = files(f.repo);
      const s4 = head(f.repo);
      expect(lstatSync(path.join(f.repo, 'tasks/clean/input/latest.csv')).isFile()).toBe(true); // the original's copytree dereferenced the link
      expect(lstatSync(path.join(f.project, 'tasks/clean/input/latest.csv')).isSymbolicLink()).toBe(true);

      // the original's working copy at s4: nothing to do ("Everything up to date")
      expectInSync(ok(dsg(f.project, ana.env, '--json', 'status')).stdout, 's4');
      expect(tree(f.repo)).toEqual(repoTree);
      expectFlat(f.repo, 's4');

      // clone: exactly the head's data files; the non-data files the repository keeps are not written
      const clone = path.join(bo.dir, 'clone');
      const c = syncSchema.parse(
        JSON.parse(ok(dsg(bo.dir, bo.env, '--json', 'clone', `localhost:${f.repo}`, clone)).stdout),
      );
      expect(c).toMatchObject({ snapshotId: 's4', repository: `localhost:${f.repo} (xfs)`, heldBack: [] });
      const got = files(clone);
      delete got['.dsgconfig.yml']; // written by the clone (the repository has no root copy yet)
      expect(Object.keys(got).sort()).toEqual(HEAD_PATHS);
      expect(got['tasks/clean/input/latest.csv']).toBe('link a.csv'); // as the head says, not the repository's regular file
      for (const p of HEAD_PATHS) {
        const e = s4.manifest.entries.get(p)!;
        if (e.type === 'file') expect(hashBytes(readFileSync(path.join(clone, p))), p).toBe(e.hash);
      }
      expect(readFileSync(path.join(clone, A_CSV), 'utf8')).toBe('id,name\n1,Ana\n2,Bo\n3,Cy\n');
      expect(readdirSync(path.join(clone, 'tasks/clean/output'))).toContain('r\u00e9sum\u00e9.csv');
      for (const p of NON_DATA) expect(existsSync(path.join(clone, p)), p).toBe(false);
      expectInSync(ok(dsg(clone, bo.env, '--json', 'status')).stdout, 's4');
      expect(tree(f.repo)).toEqual(repoTree); // a clone is read-only on the server

      // history, from the repository's head and sync-messages and the archives the original kept in its working copy
      const log = logSchema.parse(JSON.parse(ok(dsg(f.project, ana.env, '--json', 'log')).stdout));
      expect(log.snapshots.map((s) => [s.snapshotId, s.message, s.user, s.added, s.changed, s.removed])).toEqual([
        ['s4', 'Sync operation', 'ana@example.org', 1, 1, 1], // e.csv; résumé.csv; c.csv
        ['s3', 'Sync operation', 'ana@example.org', 1, 1, 0], // new.csv; a.csv
        ['s2', 'Init operation', 'ana@example.org', 0, 0, 3], // README.md, Makefile, x.py: not data
        ['s1', 'Initial snapshot', 'ana@example.org', 12, 0, 0],
      ]);
      const blame = blameSchema.parse(JSON.parse(ok(dsg(f.project, ana.env, '--json', 'blame', A_CSV)).stdout));
      expect(blame.events.map((e) => [e.snapshotId, e.change, e.user, e.hash])).toEqual([
        ['s1', 'added', 'ana@example.org', '1d812414f9aee671'],
        ['s3', 'changed', 'ana@example.org', '1c4b56b35027b247'],
      ]);
      const blameText = ok(dsg(f.project, ana.env, 'blame', A_CSV));
      expect(blameText.stdout).toMatch(/^s1\s+added\s.*1d812414f9aee671/m);
      expect(blameText.stdout).toMatch(/^s3\s+changed\s.*1c4b56b35027b247/m);
      expect(blameText.stderr).not.toMatch(/not available/);
      expect(
        validateChainSchema.parse(JSON.parse(ok(dsg(f.project, ana.env, '--json', 'validate-chain')).stdout)),
      ).toEqual({ command: 'validate-chain', ok: true, snapshots: 4, problem: null });

      // snapfetch: a flat repository keeps no old bytes, and dsg says so (in the original's working copy and in a clone without its archives); the head works
      for (const [where, env] of [
        [f.project, ana.env],
        [clone, bo.env],
      ] as const) {
        const out = path.join(where, 'a.s1');
        const e = errorOf(dsg(where, env, '--json', 'snapfetch', A_CSV, '--snapshot', 's1', '-o', out));
        expect(e.code).toBe('NOT_FOUND');
        expect(e.message).toBe(
          `the files of snapshot s1 are not available in a flat repository (${f.repo} keeps only the current tree, s4)`,
        );
        expect(e.recoveryHint).toMatch(/keeps no old files: only the head can be read/);
        expect(existsSync(out)).toBe(false);
      }
      const fetched = path.join(ana.dir, 'a.s4');
      expect(
        snapfetchSchema.parse(
          JSON.parse(
            ok(dsg(f.project, ana.env, '--json', 'snapfetch', A_CSV, '--snapshot', 's4', '-o', fetched)).stdout,
          ),
        ),
      ).toMatchObject({
        snapshotId: 's4',
        bytes: 24,
        hash: '1c4b56b35027b247',
      });
      expect(readFileSync(fetched, 'utf8')).toBe('id,name\n1,Ana\n2,Bo\n3,Cy\n');
      expect(tree(f.repo)).toEqual(repoTree);

      // bo edits a.csv in his clone and syncs: s5, in place
      const A5 = 'id,name\n1,Ana\n2,Bo\n3,Cy\n4,Di\n';
      writeFileSync(path.join(clone, A_CSV), A5);
      const s = syncSchema.parse(JSON.parse(ok(dsg(clone, bo.env, '--json', 'sync')).stdout));
      expect(s).toMatchObject({
        snapshotId: 's5',
        committed: true,
        counts: { downloaded: 0, deletedLocal: 0, deletedRemote: 0 },
        heldBack: [],
      });
      expect(s.paths).toEqual([{ path: A_CSV, state: expect.any(String), action: 'upload' }]);
      expectFlat(f.repo, 's5');
      expectNonDataKept(f.repo, repoTree, repoBytes);
      expect(readFileSync(path.join(f.repo, A_CSV), 'utf8')).toBe(A5);
      const t5 = tree(f.repo);
      // every other file of the repository untouched (latest.csv stays the original's regular file); the one addition is the config's root copy
      for (const [p, v] of Object.entries(repoTree)) if (p !== A_CSV) expect(t5[p], p).toBe(v);
      expect(Object.keys(t5).sort()).toEqual([...Object.keys(repoTree), '.dsgconfig.yml'].sort());
      expect(readdirSync(f.repoRoot).filter((n) => !n.startsWith('.'))).toEqual(['task-layout']);
      const h5 = head(f.repo);
      expectSealed(h5.manifest);
      expect(h5.manifest.metadata).toMatchObject({
        snapshot_id: 's5',
        snapshot_previous: 's4',
        created_by: 'bo@example.org',
      });
      expect(Object.keys(h5.raw.entries).sort()).toEqual(Object.keys(s4.raw.entries).sort());
      for (const [p, e] of Object.entries(s4.raw.entries)) if (p !== A_CSV) expect(h5.raw.entries[p], p).toEqual(e);
      expect(h5.raw.entries[A_CSV]).toMatchObject({
        type: 'file',
        user: 'bo@example.org',
        filesize: A5.length,
        hash: hashBytes(A5),
      });

      // the original's working copy: s5's a.csv to download. The repository's root copy of the config is the
      // clone's form, this copy's is the original's legacy form, and it never synced one: they mean the same
      // (data dirs, ignore rules), so neither is a change and nothing asks; a download alone makes no snapshot
      const st = statusSchema.parse(JSON.parse(ok(dsg(f.project, ana.env, '--json', 'status')).stdout));
      expect(st).toMatchObject({
        remoteSnapshot: 's5',
        upload: [],
        download: [A_CSV],
        deleteLocal: [],
        deleteRemote: [],
        conflicts: [],
        configChange: null,
      });
      const projectBefore = files(f.project);
      const pulled = syncSchema.parse(JSON.parse(ok(dsg(f.project, ana.env, '--json', 'sync')).stdout));
      expect(pulled).toMatchObject({
        snapshotId: 's5',
        committed: false,
        counts: { downloaded: 1, uploaded: 0, deletedLocal: 0, deletedRemote: 0 },
        heldBack: [],
      });
      expect(readFileSync(path.join(f.project, A_CSV), 'utf8')).toBe(A5);
      // the original's working copy keeps its own files: non-data, hidden, its config, the link
      const projectAfter = files(f.project);
      for (const p of [
        ...NON_DATA,
        'input/.gitkeep',
        'tasks/clean/input/.gitkeep',
        '.dsgconfig.yml',
        'tasks/clean/input/latest.csv',
      ])
        expect(projectAfter[p], p).toBe(projectBefore[p]);
      expectFlat(f.repo, 's5');
      expectNonDataKept(f.repo, repoTree, repoBytes);
      expect(tree(f.repo)).toEqual(t5); // the repository did not change, its root copy included
      expectInSync(ok(dsg(f.project, ana.env, '--json', 'status')).stdout, 's5');
    });

    it('task-layout: a clone whose .dsgconfig.yml names only input holds output/ and frozen/ back — its sync never deletes them from the repository', () => {
      const bo = sandbox(BO);
      made.push(bo.dir);
      const f = fixture('task-layout', 'tar');
      const repoTree = tree(f.repo);
      const repoBytes = files(f.repo);
      const s4 = head(f.repo);
      const clone = path.join(bo.dir, 'clone');
      ok(dsg(bo.dir, bo.env, 'clone', `localhost:${f.repo}`, clone));
      // narrower data dirs, and the local copies of what fell out of scope removed: a sync that counted
      // them would delete them from the repository
      const cfg = path.join(clone, '.dsgconfig.yml');
      writeFileSync(
        cfg,
        stringify({ ...(parse(readFileSync(cfg, 'utf8')) as Record<string, unknown>), data_dirs: ['input'] }),
      );
      for (const d of ['tasks/clean/output', 'tasks/import/frozen', 'tasks/import/output'])
        rmSync(path.join(clone, d), { recursive: true });
      const HELD = [
        'tasks/clean/output/b.csv',
        'tasks/clean/output/my report.csv',
        'tasks/clean/output/new.csv',
        RESUME,
        'tasks/import/frozen/d.parquet',
        'tasks/import/output/e.csv',
      ].sort();
      const heldPaths = (h: { path: string; reason: string }[]): string[] => {
        for (const x of h) expect(x.reason).toMatch(/outside the data directories/);
        return h.map((x) => x.path).sort();
      };

      const st = statusSchema.parse(JSON.parse(ok(dsg(clone, bo.env, '--json', 'status')).stdout));
      expect(st).toMatchObject({
        remoteSnapshot: 's4',
        deleteRemote: [],
        deleteLocal: [],
        download: [],
        upload: [],
        conflicts: [],
      });
      expect(heldPaths(st.heldBack)).toEqual(HELD);

      writeFileSync(path.join(clone, A_CSV), 'id,name\n9,Zed\n');
      const s = syncSchema.parse(JSON.parse(ok(dsg(clone, bo.env, '--json', 'sync')).stdout));
      expect(s).toMatchObject({ snapshotId: 's5', committed: true, counts: { deletedRemote: 0, deletedLocal: 0 } });
      expect(s.paths.filter((p) => p.action !== 'upload')).toEqual([]);
      expect(heldPaths(s.heldBack ?? [])).toEqual(HELD);
      expectFlat(f.repo, 's5');
      // held back: still in the repository, untouched, and carried into s5 entry for entry
      const t = tree(f.repo);
      const b = files(f.repo);
      for (const p of [...HELD, ...NON_DATA]) {
        expect(t[p], p).toBe(repoTree[p]);
        expect(b[p], p).toBe(repoBytes[p]);
      }
      const h5 = head(f.repo);
      expectSealed(h5.manifest);
      for (const p of HELD) expect(h5.raw.entries[p], p).toEqual(s4.raw.entries[p]);
      expect(Object.keys(h5.raw.entries).sort()).toEqual(Object.keys(s4.raw.entries).sort());
      for (const p of HELD) expect(existsSync(path.join(clone, p)), p).toBe(false); // and never written back here

      // a second sync with nothing to do: still held back, still nothing deleted
      const again = syncSchema.parse(JSON.parse(ok(dsg(clone, bo.env, '--json', 'sync')).stdout));
      expect(again).toMatchObject({ snapshotId: 's5', committed: false, counts: { deletedRemote: 0 } });
      expect(heldPaths(again.heldBack ?? [])).toEqual(HELD);
      expect(tree(f.repo)).toEqual(t);
    });

    it('conflict-backup: status is clean and ignores the backup; clone refuses the inconsistent repository and says so; bo at his own s3 is refused; nothing is lost on any side', () => {
      const ana = sandbox(ANA);
      const bo = sandbox(BO);
      made.push(ana.dir, bo.dir);
      const f = fixture('conflict-backup', 'tar');
      const other = f.other('project-other');
      const BACKUP = 'input/a.csv~20261201T053516-0800~';
      const ANA_A = 'id,v\n1,local-ana\n';
      const BO_A = 'id,v\n1,remote-bo\n';
      expect(existsSync(path.join(f.project, BACKUP))).toBe(true);
      expect(readFileSync(path.join(f.repo, 'input/a.csv'), 'utf8')).toBe(BO_A); // the head says ana's bytes (7d93bf9bf4a5df17)
      const repoTree = tree(f.repo);
      const projectFiles = files(f.project);
      const otherFiles = files(other);

      // ana's working copy: in sync at s3; the original's conflict backup is no data (not uploaded, not an invalid name)
      const st = ok(dsg(f.project, ana.env, '--json', 'status'));
      expectInSync(st.stdout, 's3');
      const sd = statusSchema.parse(JSON.parse(st.stdout));
      expect(sd.paths.map((p) => p.path)).not.toContain(BACKUP);
      expect(sd.heldBack).toEqual([]);
      expect(syncSchema.parse(JSON.parse(ok(dsg(f.project, ana.env, '--json', 'sync')).stdout))).toMatchObject({
        snapshotId: 's3',
        committed: false,
        counts: { uploaded: 0 },
      });
      expect(tree(f.repo)).toEqual(repoTree);
      expect(files(f.project)).toEqual(projectFiles);

      // clone: refused by hash, naming the file and both hashes; the hint says the repository is inconsistent
      // (running again cannot help) and how it is repaired; the destination is left as it was found
      const emptyDest = path.join(ana.dir, 'empty');
      mkdirSync(emptyDest);
      for (const dest of [path.join(ana.dir, 'absent', 'clone'), emptyDest]) {
        const e = errorOf(dsg(ana.dir, ana.env, '--json', 'clone', `localhost:${f.repo}`, dest));
        expect(e.code).toBe('HASH_MISMATCH');
        expect(e.message).toMatch(
          /^hash mismatch for input\/a\.csv: expected 7d93bf9bf4a5df17, received 8fcfd25a8ad08827: the repository's copy of input\/a\.csv does not match the repository's manifest/,
        );
        expect(e.details).toMatchObject({ path: 'input/a.csv' });
        expect(e.recoveryHint).toMatch(
          /^The repository is inconsistent: its copy of input\/a\.csv was changed outside dsg, or left so by another tool, and running again fails the same way/,
        );
        expect(e.recoveryHint).toMatch(/`dsg validate-snapshot` lists every such file/);
        expect(e.recoveryHint).not.toMatch(/\brun (the command|the sync|it) again\b|transfer was corrupted/);
      }
      expect(existsSync(path.join(ana.dir, 'absent'))).toBe(false);
      expect(readdirSync(emptyDest)).toEqual([]);
      const text = dsg(ana.dir, ana.env, 'clone', `localhost:${f.repo}`, path.join(ana.dir, 'c2'));
      expect(text.code).toBe(1);
      expect(text.stderr).toMatch(
        /^error: hash mismatch for input\/a\.csv: .*does not match the repository's manifest/m,
      );
      expect(text.stderr).toMatch(/^hint: The repository is inconsistent/m);
      expect(tree(f.repo)).toEqual(repoTree);

      // what the hint points to: validate-snapshot names the file
      const vs = dsg(f.project, ana.env, '--json', 'validate-snapshot');
      expect(vs.code).toBe(1);
      expect(validateSnapshotSchema.parse(JSON.parse(vs.stdout)).problems).toEqual([
        { path: 'input/a.csv', reason: 'hash 8fcfd25a8ad08827, manifest says 7d93bf9bf4a5df17' },
      ]);

      // bo, at his own s3 (same id, another snapshot): refused before anything is planned or changed
      const boRefused = (): void => {
        for (const args of [['status'], ['sync'], ['sync', '--dry-run']]) {
          const e = errorOf(dsg(other, bo.env, '--json', ...args));
          expect(e.code, args.join(' ')).toBe('DIVERGED_HISTORY');
          expect(e.message).toMatch(
            /last sync is s3 \(bo@example\.org, 2026-12-01T05:35:08-08:00, snapshot hash a9f1452ccc8469d2\), but the repository's s3 is another snapshot: s3 \(ana@example\.org, 2026-12-01T05:35:16-08:00, snapshot hash 36dfca33265d4863\)/,
          );
          expect(e.recoveryHint).toMatch(/^Nothing was changed.*`dsg clone`/);
        }
        expect(files(other)).toEqual(otherFiles);
        expect(readFileSync(path.join(other, 'input/a.csv'), 'utf8')).toBe(BO_A);
      };
      boRefused();
      expect(tree(f.repo)).toEqual(repoTree);
      expect(files(f.project)).toEqual(projectFiles);

      // the repository repaired as the hint says (its a.csv restored from ana's working copy, which checks it):
      // the clone works; bo is still refused — compared by id alone, his sync would download ana's a.csv over his,
      // whose bytes no snapshot of the repository keeps
      expect(ok(dsg(f.project, ana.env, 'validate-file', 'input/a.csv')).stdout).toMatch(/same hash 7d93bf9bf4a5df17/);
      copyFileSync(path.join(f.project, 'input/a.csv'), path.join(f.repo, 'input/a.csv'));
      const clone = path.join(ana.dir, 'clone');
      expect(
        syncSchema.parse(JSON.parse(ok(dsg(ana.dir, ana.env, '--json', 'clone', `localhost:${f.repo}`, clone)).stdout))
          .snapshotId,
      ).toBe('s3');
      expect(readFileSync(path.join(clone, 'input/a.csv'), 'utf8')).toBe(ANA_A);
      expect(existsSync(path.join(clone, BACKUP))).toBe(false);
      boRefused();
      expectFlat(f.repo, 's3');
      expect(files(f.project)).toEqual(projectFiles);
    });
  },
);
