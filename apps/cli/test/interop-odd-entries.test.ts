/**
 * The original dsg's (HRDAG/dsg 0.4.4) odd-entries fixture through the BUILT
 * dsg: a manifest holding entries the original records without complaint and
 * this dsg will not write (`input/a\b.csv`, the link `input/l ->
 * ../../outside.txt`, `input/old.csv` with the mtime
 * `1879-12-31T00:00:00-07:52:58`). One such entry never makes the repository
 * unreadable: status, clone, log and validate-chain work, the odd entries are
 * reported as held back (never written, never deleted), and the next
 * snapshot carries them with exactly the JSON the original wrote.
 *
 * Two copies of the fixture: the pax tar (exact: `input/l` is a dangling
 * symlink, old.csv dated 1879) and the directory tree (git made `input/l` a
 * regular file holding the target). `__REPO_ROOT__` is substituted in
 * .dsgconfig.yml; the repository is the flat tree `<repo>/odd-entries/`.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { entriesHash, parseManifest, unusableReason } from '@dsg/manifest';
import { dsg, ok, sandbox, type RunResult } from './helpers.js';
import {
  expectInSync,
  FIXTURES,
  FIXTURES_TAR,
  fixture,
  made,
  removeMade,
  requireFixtures,
  tree,
} from './interop-helpers.js';
import {
  logSchema,
  statusSchema,
  syncSchema,
  validateChainSchema,
  validateSnapshotSchema,
} from '../src/output/json-schemas.js';

const NAME = 'odd-entries';
requireFixtures([NAME], { tar: true });
afterAll(removeMade);

type Source = 'tar' | 'directory';

const ODD = ['input/a\\b.csv', 'input/l', 'input/old.csv'];
const REASONS = {
  'input/a\\b.csv': /backslash/,
  'input/l': /symlink target escapes the project/,
  'input/old.csv': /^mtime "1879-12-31T00:00:00-07:52:58" is not an ISO 8601 timestamp/,
};

function expectHeldBack(held: { path: string; reason: string }[] | undefined): void {
  expect(held?.map((h) => h.path)).toEqual(ODD);
  for (const h of held ?? []) expect(h.reason, h.path).toMatch(REASONS[h.path as keyof typeof REASONS]);
}

/** The original's "Everything up to date", the odd entries held back. */
function expectInSyncHeldBack(stdout: string, head: string): void {
  expectInSync(stdout, head);
  expectHeldBack(statusSchema.parse(JSON.parse(stdout)).heldBack);
}

/** The held-back report of sync and clone (their human output; --json has it as `heldBack`): said once per command, naming each entry. */
function expectReportedOnce(r: RunResult): void {
  expect(r.stderr.match(/held back/g), r.stderr).toHaveLength(1);
  expect(r.stderr).toMatch(/3 repository entries are held back/);
  for (const p of ODD) expect(r.stderr).toContain(`  ${p}: `);
}

const entriesJson = (file: string): Record<string, unknown> =>
  (JSON.parse(readFileSync(file, 'utf8')) as { entries: Record<string, unknown> }).entries;

describe.skipIf(!existsSync(path.join(FIXTURES, NAME)))(
  "the original's odd entries (interop fixture odd-entries), through the built dsg",
  () => {
    it.each<Source>(['tar', 'directory'])(
      'from the %s: status, clone, log, validate-chain; a change synced carries the odd entries unchanged',
      (from) => {
        if (from === 'tar' && !existsSync(FIXTURES_TAR)) return;
        const sb = sandbox('user_id: ana@example.org\nuser_name: Ana Py\n');
        made.push(sb.dir);
        const f = fixture(NAME, from);
        const original = entriesJson(path.join(f.repo, '.dsg', 'last-sync.json'));
        const repoBefore = tree(f.repo);
        const projectBefore = tree(f.project);

        // status in the original's working copy: at s2, nothing to do, the odd entries held back
        expectInSyncHeldBack(ok(dsg(f.project, sb.env, '--json', 'status')).stdout, 's2');
        expect(tree(f.repo)).toEqual(repoBefore);
        expect(tree(f.project)).toEqual(projectBefore);

        // clone: the good files written, the odd ones not (nor the link's target outside the clone)
        const clone = path.join(sb.dir, 'clone');
        const cr = ok(dsg(sb.dir, sb.env, 'clone', `localhost:${f.repo}`, clone));
        expect(cr.stdout).toMatch(/^cloned .* at s2 into .*: 2 file\(s\)/);
        expectReportedOnce(cr);
        expect(readFileSync(path.join(clone, 'input', 'a.csv'), 'utf8')).toBe('id\n1\n');
        expect(readFileSync(path.join(clone, 'output', 'b.csv'), 'utf8')).toBe('out\n');
        expect(
          Object.keys(tree(clone))
            .filter((p) => p !== '.dsgconfig.yml')
            .sort(),
        ).toEqual(['input/a.csv', 'output/b.csv']);
        expect(existsSync(path.join(sb.dir, 'outside.txt'))).toBe(false);
        expectInSyncHeldBack(ok(dsg(clone, sb.env, '--json', 'status')).stdout, 's2');
        expect(tree(f.repo)).toEqual(repoBefore); // a clone is read-only on the server

        // log reads every manifest (the head and what archives there are)
        const log = logSchema.parse(JSON.parse(ok(dsg(f.project, sb.env, '--json', 'log')).stdout));
        expect(log.snapshots.map((s) => s.snapshotId)).toEqual(['s2', 's1']);
        // blame of a good file and of an odd one: both read from the manifests, nothing opened by the odd path
        const blame = (p: string): [string, string][] =>
          (
            JSON.parse(ok(dsg(f.project, sb.env, '--json', 'blame', p)).stdout) as {
              events: { snapshotId: string; change: string }[];
            }
          ).events.map((e) => [e.snapshotId, e.change]);
        expect(blame('input/a.csv')).toEqual([['s1', 'added']]);
        expect(blame('input/old.csv')).toEqual([['s1', 'added']]);
        // snapfetch: the head's good file is fetched; an odd entry is refused with its reason, nothing written
        ok(
          dsg(
            f.project,
            sb.env,
            '--json',
            'snapfetch',
            'input/a.csv',
            '--snapshot',
            's2',
            '-o',
            path.join(sb.dir, 'a.s2'),
          ),
        );
        expect(readFileSync(path.join(sb.dir, 'a.s2'), 'utf8')).toBe('id\n1\n');
        const odd = dsg(
          f.project,
          sb.env,
          '--json',
          'snapfetch',
          'input/old.csv',
          '--snapshot',
          's2',
          '-o',
          path.join(sb.dir, 'old.s2'),
        );
        expect(odd.code).not.toBe(0);
        expect((JSON.parse(odd.stdout) as { error: { message: string } }).error.message).toMatch(/held back/);
        expect(existsSync(path.join(sb.dir, 'old.s2'))).toBe(false);

        // validate-chain reads the odd manifest. The original never puts an archive into its
        // repository; its working copies keep them, and dsg takes s1's from this one (it is the
        // snapshot the repository records: same snapshot_hash). A clone has none and says which is missing.
        expect(
          validateChainSchema.parse(JSON.parse(ok(dsg(f.project, sb.env, '--json', 'validate-chain')).stdout)),
        ).toEqual({ command: 'validate-chain', ok: true, snapshots: 2, problem: null });
        const vc1 = dsg(clone, sb.env, '--json', 'validate-chain');
        expect(validateChainSchema.parse(JSON.parse(vc1.stdout))).toMatchObject({
          ok: false,
          problem: { snapshotId: 's1', reason: expect.stringMatching(/archive\) is missing/) as unknown },
        });
        expect(vc1.code).toBe(1);
        // validate-snapshot checks the good files and lists the odd entries as not checked (never opened by their paths)
        const vs = validateSnapshotSchema.parse(
          JSON.parse(ok(dsg(f.project, sb.env, '--json', 'validate-snapshot')).stdout),
        );
        expect(vs).toMatchObject({ snapshotId: 's2', ok: true, files: 2, problems: [] });
        expect(vs.heldBack?.map((h) => h.path).sort()).toEqual([...ODD].sort());

        // a change in the original's working copy, synced: s3 carries the odd entries as the original wrote them
        writeFileSync(path.join(f.project, 'input', 'a.csv'), 'id\n1\n2\n');
        const dry = ok(dsg(f.project, sb.env, 'sync', '--dry-run'));
        expect(dry.stdout).toMatch(/upload +input\/a\.csv/);
        expectReportedOnce(dry);
        const s = syncSchema.parse(JSON.parse(ok(dsg(f.project, sb.env, '--json', 'sync')).stdout));
        expect(s).toMatchObject({
          snapshotId: 's3',
          committed: true,
          counts: { downloaded: 0, deletedLocal: 0, deletedRemote: 0 },
        });
        expect(s.paths.map((p) => p.path).filter((p) => p !== '.dsgconfig.yml')).toEqual(['input/a.csv']);
        expectHeldBack(s.heldBack);
        const headFile = path.join(f.repo, '.dsg', 'last-sync.json');
        const head = parseManifest(readFileSync(headFile), headFile);
        expect(head.metadata).toMatchObject({ snapshot_id: 's3', snapshot_previous: 's2', entry_count: 5 });
        expect(entriesHash(head.entries.values())).toBe(head.metadata?.entries_hash);
        const after = entriesJson(headFile);
        for (const p of [...ODD, 'output/b.csv']) expect(after[p], p).toEqual(original[p]);
        for (const p of ODD) expect(unusableReason(head.entries.get(p)!), p).not.toBeNull();
        expect(readFileSync(headFile, 'utf8')).toContain('"mtime": "1879-12-31T00:00:00-07:52:58"');
        // the repository's odd files are untouched (same kind, inode, size, mtime); a.csv is the new one
        const repoAfter = tree(f.repo);
        for (const p of ODD) expect(repoAfter[p], p).toBe(repoBefore[p]);
        expect(readFileSync(path.join(f.repo, 'input', 'a.csv'), 'utf8')).toBe('id\n1\n2\n');
        // and so are the working copy's
        const projectAfter = tree(f.project);
        for (const p of ODD) expect(projectAfter[p], p).toBe(projectBefore[p]);

        expect(
          validateChainSchema.parse(JSON.parse(ok(dsg(f.project, sb.env, '--json', 'validate-chain')).stdout)),
        ).toEqual({ command: 'validate-chain', ok: true, snapshots: 3, problem: null });
        expectInSyncHeldBack(ok(dsg(f.project, sb.env, '--json', 'status')).stdout, 's3');
        // the clone sees s3 (and, maybe, the config the sync shared: its own, written by clone, differs)
        const cs = statusSchema.parse(JSON.parse(ok(dsg(clone, sb.env, '--json', 'status')).stdout));
        expect(cs.remoteSnapshot).toBe('s3');
        expect(cs.download.filter((p) => p !== '.dsgconfig.yml')).toEqual(['input/a.csv']);
        expectHeldBack(cs.heldBack);
      },
      180_000,
    );
  },
);
