/**
 * The original dsg's (HRDAG/dsg 0.4.4) xfs repositories, through the BUILT
 * dsg: its fixtures (shared/interop beside this checkout, or DSG_INTEROP_FIXTURES) copied
 * into a temp dir with `__REPO_ROOT__` substituted. The repository is the
 * flat tree `<repo>/<name>/` with `.dsg/` inside; dsg reads it, clones it,
 * syncs it in place, and leaves it flat (no `current`, no `snapshots/`).
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { requireSsh } from '@dsg/testenv';
import { parse } from 'yaml';
import { AGENT, dsg, ok, sandbox } from './helpers.js';
import {
  FIXTURES,
  expectFlat,
  expectInSync,
  fixture,
  made,
  removeMade,
  requireFixtures,
  tree,
} from './interop-helpers.js';
import { statusSchema, syncSchema } from '../src/output/json-schemas.js';

requireFixtures();
afterAll(removeMade);

describe.skipIf(!existsSync(FIXTURES))(
  "the original's xfs repositories (interop fixtures), through the built dsg",
  () => {
    it.each(['new-config', 'legacy-config'])(
      '%s: status, clone, a change synced in place; the repository stays flat and its config form is kept',
      (name) => {
        const sb = sandbox('user_id: ana@example.org\nuser_name: Ana Py\n');
        made.push(sb.dir);
        const f = fixture(name);
        const configBefore = readFileSync(path.join(f.project, '.dsgconfig.yml'), 'utf8');
        const repoBefore = tree(f.repo);

        // status in the original's working copy: at the head s3, nothing to do (the original: "Everything up to date")
        const st = ok(dsg(f.project, sb.env, '--json', 'status'));
        expectInSync(st.stdout, 's3');
        // its history, read with the archives the original keeps in the working copy
        const blame = JSON.parse(ok(dsg(f.project, sb.env, '--json', 'blame', 'input/a.csv')).stdout) as {
          events: { snapshotId: string; change: string; user: string }[];
        };
        expect(blame.events.map((e) => [e.snapshotId, e.change])).toEqual([
          ['s1', 'added'],
          ['s3', 'changed'],
        ]);
        expect(JSON.parse(ok(dsg(f.project, sb.env, '--json', 'validate-chain')).stdout)).toEqual({
          command: 'validate-chain',
          ok: true,
          snapshots: 3,
          problem: null,
        });
        // the head's bytes can be fetched; an older version is not kept by a flat repository, and dsg says so
        ok(
          dsg(
            f.project,
            sb.env,
            '--json',
            'snapfetch',
            'input/a.csv',
            '--snapshot',
            's3',
            '-o',
            path.join(sb.dir, 'a.s3'),
          ),
        );
        expect(readFileSync(path.join(sb.dir, 'a.s3'), 'utf8')).toBe('id,v\n1,one\n2,two\n');
        const old = dsg(
          f.project,
          sb.env,
          '--json',
          'snapfetch',
          'input/a.csv',
          '--snapshot',
          's2',
          '-o',
          path.join(sb.dir, 'a.s2'),
        );
        expect(old.code).not.toBe(0);
        expect(JSON.parse(old.stdout).error.message).toMatch(/s2/);
        expect(existsSync(path.join(sb.dir, 'a.s2'))).toBe(false);
        expect(JSON.parse(st.stdout).repository).toMatch(/\(xfs\)$/);
        expect(tree(f.repo)).toEqual(repoBefore);
        expectFlat(f.repo, 's3');

        // clone localhost:<repo>/<name>
        const clone = path.join(sb.dir, 'clone');
        const c = syncSchema.parse(
          JSON.parse(ok(dsg(sb.dir, sb.env, '--json', 'clone', `localhost:${f.repo}`, clone)).stdout),
        );
        expect(c.snapshotId).toBe('s3');
        expect(readFileSync(path.join(clone, 'input', 'a.csv'), 'utf8')).toBe('id,v\n1,one\n2,two\n');
        expect(readFileSync(path.join(clone, 'output', 'b.csv'), 'utf8')).toBe('out\n');
        // the repository has no root copy of the config yet: the clone writes one in the original's form, which it reads
        for (const f2 of ['.dsgconfig.yml', '.dsg/config.local.yml']) {
          expect((parse(readFileSync(path.join(clone, f2), 'utf8')) as { repository: unknown }).repository, f2).toEqual(
            { type: 'xfs', host: 'localhost', mountpoint: f.repoRoot },
          );
        }
        expectInSync(ok(dsg(clone, sb.env, '--json', 'status')).stdout, 's3');
        expect(tree(f.repo)).toEqual(repoBefore); // a clone is read-only on the server

        // a change in the original's working copy, synced: s4 in place
        writeFileSync(path.join(f.project, 'input', 'a.csv'), 'id,v\n1,one\n2,two\n3,three\n');
        const s = syncSchema.parse(JSON.parse(ok(dsg(f.project, sb.env, '--json', 'sync')).stdout));
        expect(s).toMatchObject({ snapshotId: 's4', committed: true });
        expectFlat(f.repo, 's4');
        expect(readFileSync(path.join(f.repo, 'input', 'a.csv'), 'utf8')).toBe('id,v\n1,one\n2,two\n3,three\n');
        const after = tree(f.repo);
        expect(after['output/b.csv']).toBe(repoBefore['output/b.csv']); // untouched: same inode, size, mtime
        // the one file added beside the data: the repository's root copy of the config, never a manifest entry
        expect(Object.keys(after).sort()).toEqual([...Object.keys(repoBefore), '.dsgconfig.yml'].sort());
        expect(readFileSync(path.join(f.repo, '.dsgconfig.yml'), 'utf8')).toBe(configBefore);
        const head = JSON.parse(readFileSync(path.join(f.repo, '.dsg', 'last-sync.json'), 'utf8')) as {
          entries: Record<string, unknown>;
        };
        expect(Object.keys(head.entries).sort()).toEqual(['input/a.csv', 'output/b.csv']);
        // the original's .dsg files are the new head and its sync-messages; dsg adds the archives the original's clients keep
        // (s1, s2 from this working copy, verified against the recorded snapshot hashes; s3 from the repository's head)
        expect(readdirSync(path.join(f.repo, '.dsg')).sort()).toEqual([
          'archive',
          'last-sync.json',
          'sync-messages.json',
        ]);
        expect(readdirSync(path.join(f.repo, '.dsg', 'archive')).sort()).toEqual([
          's1-sync.json.lz4',
          's2-sync.json.lz4',
          's3-sync.json.lz4',
        ]);
        for (const sid of ['s1', 's2']) {
          const a = `.dsg/archive/${sid}-sync.json.lz4`;
          expect(readFileSync(path.join(f.repo, a)).equals(readFileSync(path.join(f.project, a))), a).toBe(true);
        }
        expect(readdirSync(f.repoRoot).filter((n) => !n.startsWith('.'))).toEqual([name]);
        // the user's config form is kept
        expect(readFileSync(path.join(f.project, '.dsgconfig.yml'), 'utf8')).toBe(configBefore);
        expectInSync(ok(dsg(f.project, sb.env, '--json', 'status')).stdout, 's4');

        // the clone sees s4, and the root copy the sync shared replaces the config its clone wrote (not edited since: no conflict)
        const cs = statusSchema.parse(JSON.parse(ok(dsg(clone, sb.env, '--json', 'status')).stdout));
        expect(cs).toMatchObject({ remoteSnapshot: 's4', download: ['.dsgconfig.yml', 'input/a.csv'], conflicts: [] });

        // history: every snapshot listed; an old file's bytes are not kept by a flat repository, and dsg says so
        const log = JSON.parse(ok(dsg(f.project, sb.env, '--json', 'log')).stdout) as {
          snapshots: { snapshotId: string }[];
        };
        expect(log.snapshots.map((x) => x.snapshotId)).toEqual(['s4', 's3', 's2', 's1']);
        // the clone, which has no archives of its own, reads the whole chain from the repository now
        expect(JSON.parse(ok(dsg(clone, sb.env, '--json', 'validate-chain')).stdout)).toEqual({
          command: 'validate-chain',
          ok: true,
          snapshots: 4,
          problem: null,
        });
      },
    );
  },
);

describe("a new repository in the original's flat layout, through the built dsg", () => {
  it('init --repo-type xfs makes <path>/<name> flat and writes {type: xfs, host, mountpoint}; clone --repo-type xfs and a sync keep it flat', () => {
    const sb = sandbox('user_id: ana@example.org\nuser_name: Ana Py\n');
    made.push(sb.dir);
    const proj = path.join(sb.dir, 'proj');
    const repoRoot = path.join(sb.dir, 'repos');
    mkdirSync(path.join(proj, 'tasks', 'clean', 'input'), { recursive: true });
    writeFileSync(path.join(proj, 'tasks', 'clean', 'input', 'a.csv'), 'a\n');
    ok(
      dsg(
        proj,
        sb.env,
        'init',
        '--host',
        'localhost',
        '--repo-type',
        'xfs',
        '--repo-path',
        repoRoot,
        '--repo-name',
        'flatnew',
      ),
    );
    const repo = path.join(repoRoot, 'flatnew');
    expectFlat(repo, 's1');
    expect(readFileSync(path.join(repo, 'tasks', 'clean', 'input', 'a.csv'), 'utf8')).toBe('a\n');
    const xfs = { type: 'xfs', host: 'localhost', mountpoint: repoRoot };
    expect(
      (parse(readFileSync(path.join(proj, '.dsgconfig.yml'), 'utf8')) as { repository: unknown }).repository,
    ).toEqual(xfs);
    expect(readFileSync(path.join(repo, '.dsgconfig.yml'), 'utf8')).toBe(
      readFileSync(path.join(proj, '.dsgconfig.yml'), 'utf8'),
    );

    const clone = path.join(sb.dir, 'clone');
    expect(
      syncSchema.parse(
        JSON.parse(ok(dsg(sb.dir, sb.env, '--json', 'clone', '--repo-type', 'xfs', `localhost:${repo}`, clone)).stdout),
      ).snapshotId,
    ).toBe('s1');
    expect(
      (parse(readFileSync(path.join(clone, '.dsg', 'config.local.yml'), 'utf8')) as { repository: unknown }).repository,
    ).toEqual(xfs);
    expectInSync(ok(dsg(clone, sb.env, '--json', 'status')).stdout, 's1');
    writeFileSync(path.join(clone, 'tasks', 'clean', 'input', 'b.csv'), 'b\n');
    expect(syncSchema.parse(JSON.parse(ok(dsg(clone, sb.env, '--json', 'sync')).stdout))).toMatchObject({
      snapshotId: 's2',
      committed: true,
    });
    expectFlat(repo, 's2');
    expect(readFileSync(path.join(repo, 'tasks', 'clean', 'input', 'b.csv'), 'utf8')).toBe('b\n');
  });
});

const ssh = requireSsh();
describe.skipIf(!existsSync(FIXTURES) || !ssh)(
  "the original's xfs repository on a server, through the built dsg and the agent over the real sshd",
  () => {
    it('legacy-config with host set to the server: status, a change synced (agent --type xfs), clone host:<path>/<name> (agent --type posix finds it flat)', () => {
      const hosts = `hosts:\n  ${ssh!.host}:\n    port: ${ssh!.port}\n    user: ${ssh!.user}\n    agent: [${process.execPath}, ${AGENT}]\n    key_path: ${ssh!.key}\n`;
      const sb = sandbox(
        `user_id: ana@example.org\nuser_name: Ana Py\nssh:\n  known_hosts: ${ssh!.knownHosts}\n${hosts}`,
      );
      made.push(sb.dir);
      const f = fixture('legacy-config');
      const cfg = path.join(f.project, '.dsgconfig.yml');
      writeFileSync(cfg, readFileSync(cfg, 'utf8').replace('host: localhost', `host: ${ssh!.host}`));
      const repoBefore = tree(f.repo);

      const st = ok(dsg(f.project, sb.env, '--json', 'status'));
      expectInSync(st.stdout, 's3');
      expect(JSON.parse(st.stdout).repository).toBe(`${ssh!.host}:${f.repo} (xfs)`);

      writeFileSync(path.join(f.project, 'output', 'b.csv'), 'out\nmore\n');
      expect(syncSchema.parse(JSON.parse(ok(dsg(f.project, sb.env, '--json', 'sync')).stdout))).toMatchObject({
        snapshotId: 's4',
        committed: true,
      });
      expectFlat(f.repo, 's4');
      expect(readFileSync(path.join(f.repo, 'output', 'b.csv'), 'utf8')).toBe('out\nmore\n');
      expect(tree(f.repo)['input/a.csv']).toBe(repoBefore['input/a.csv']);
      expect(existsSync(path.join(f.repoRoot, 'legacy-config', 'lock'))).toBe(false);

      const clone = path.join(sb.dir, 'clone');
      expect(
        syncSchema.parse(JSON.parse(ok(dsg(sb.dir, sb.env, '--json', 'clone', `${ssh!.host}:${f.repo}`, clone)).stdout))
          .snapshotId,
      ).toBe('s4');
      expect(readFileSync(path.join(clone, 'output', 'b.csv'), 'utf8')).toBe('out\nmore\n');
      // the agent told the client the layout it found: the clone keeps the original's form
      expect(
        (parse(readFileSync(path.join(clone, '.dsg', 'config.local.yml'), 'utf8')) as { repository: { type: string } })
          .repository,
      ).toMatchObject({ type: 'xfs', mountpoint: f.repoRoot });
      expectInSync(ok(dsg(clone, sb.env, '--json', 'status')).stdout, 's4');
    });
  },
);
