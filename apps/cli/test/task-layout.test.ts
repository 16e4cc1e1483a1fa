/**
 * HRDAG's task layout (data dirs below the project root: tasks/<task>/input,
 * output, frozen), through the built binary: init, clone, edits synced both
 * ways; files outside the data dirs and hidden files never enter a snapshot;
 * and when one working copy narrows its data dirs, nothing it no longer scans
 * leaves the repository (held back, with the config change that would take it
 * in), while the teammate's sync refuses the narrowing until accepted.
 */
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { errorDocSchema, statusSchema, syncSchema } from '../src/output/json-schemas.js';
import { dsg, ok, sandbox, write } from './helpers.js';

const entriesOf = (repo: string): string[] =>
  Object.keys(
    (
      JSON.parse(readFileSync(path.join(repo, 'current', '.dsg', 'last-sync.json'), 'utf8')) as {
        entries: Record<string, unknown>;
      }
    ).entries,
  ).sort();

describe('the task layout, through the built dsg', () => {
  it('init, clone, edits both ways; out-of-scope and hidden files stay out; a narrowed scope holds back, never deletes', () => {
    const sb = sandbox();
    const A = path.join(sb.dir, 'a');
    const root = mkdtempSync(path.join(os.tmpdir(), 'dsg-cli-tasks-'));
    const repo = path.join(root, 'tl');
    write(path.join(A, 'tasks', 'clean', 'input', 'a.csv'), 'id\n1\n');
    write(path.join(A, 'tasks', 'clean', 'output', 'b.csv'), 'b\n');
    write(path.join(A, 'tasks', 'import', 'frozen', 'raw', 'c.csv'), 'c\n');
    write(path.join(A, 'tasks', 'clean', 'src', 'x.py'), 'import pandas\n'); // not data
    write(path.join(A, 'README.md'), '# tl\n'); // not data
    write(path.join(A, 'tasks', 'clean', 'input', '.gitkeep'), ''); // hidden
    const data = ['tasks/clean/input/a.csv', 'tasks/clean/output/b.csv', 'tasks/import/frozen/raw/c.csv'];

    const init = syncSchema.parse(
      JSON.parse(
        ok(dsg(A, sb.env, '--json', 'init', '--repo-type', 'posix', '--repo-path', root, '--repo-name', 'tl')).stdout,
      ),
    );
    expect(init.snapshotId).toBe('s1');
    expect(entriesOf(repo)).toEqual(data);
    expect(statusSchema.parse(JSON.parse(ok(dsg(A, sb.env, '--json', 'status')).stdout)).clean).toBe(true);

    const B = path.join(sb.dir, 'b');
    ok(dsg(sb.dir, sb.env, 'clone', `localhost:${repo}`, B));
    for (const p of data) expect(readFileSync(path.join(B, p), 'utf8')).toBe(readFileSync(path.join(A, p), 'utf8'));
    for (const p of ['README.md', 'tasks/clean/src/x.py', 'tasks/clean/input/.gitkeep'])
      expect(existsSync(path.join(B, p)), p).toBe(false);
    expect(statusSchema.parse(JSON.parse(ok(dsg(B, sb.env, '--json', 'status')).stdout)).clean).toBe(true);

    // an edit in tasks/*/input both ways
    writeFileSync(path.join(B, 'tasks', 'clean', 'input', 'a.csv'), 'id\n1\n2\n');
    expect(syncSchema.parse(JSON.parse(ok(dsg(B, sb.env, '--json', 'sync')).stdout))).toMatchObject({
      snapshotId: 's2',
      counts: { uploaded: 1 },
    });
    expect(syncSchema.parse(JSON.parse(ok(dsg(A, sb.env, '--json', 'sync')).stdout)).counts.downloaded).toBe(1);
    expect(readFileSync(path.join(A, 'tasks', 'clean', 'input', 'a.csv'), 'utf8')).toBe('id\n1\n2\n');
    write(path.join(A, 'tasks', 'import', 'input', 'new.csv'), 'n\n');
    expect(syncSchema.parse(JSON.parse(ok(dsg(A, sb.env, '--json', 'sync')).stdout)).snapshotId).toBe('s3');
    ok(dsg(B, sb.env, 'sync'));
    expect(readFileSync(path.join(B, 'tasks', 'import', 'input', 'new.csv'), 'utf8')).toBe('n\n');

    // B narrows its data dirs to input: output and frozen files are no longer its to scan, and stay in the repository
    const cfg = path.join(B, '.dsgconfig.yml');
    writeFileSync(cfg, readFileSync(cfg, 'utf8').replace(/data_dirs:[\s\S]*?(?=\n\S|$)/, 'data_dirs:\n  - input'));
    const narrowed = syncSchema.parse(JSON.parse(ok(dsg(B, sb.env, '--json', 'sync')).stdout));
    expect(narrowed.counts).toMatchObject({ deletedRemote: 0, deletedLocal: 0 });
    const held = new Map((narrowed.heldBack ?? []).map((h) => [h.path, h.reason]));
    expect(held.get('tasks/clean/output/b.csv')).toMatch(/outside the data directories.*data_dirs with "output"/);
    expect(held.get('tasks/import/frozen/raw/c.csv')).toMatch(/data_dirs with "raw"/);
    expect(entriesOf(repo)).toEqual([...data, 'tasks/import/input/new.csv'].sort());
    expect(existsSync(path.join(B, 'tasks', 'clean', 'output', 'b.csv'))).toBe(true); // nor deleted in B

    // the teammate's sync refuses the narrowing (it would change what A syncs) until accepted; nothing changed
    const refused = dsg(A, sb.env, '--json', 'sync');
    expect(refused.code).toBe(1);
    const err = errorDocSchema.parse(JSON.parse(refused.stdout));
    expect(err.error.code).toBe('CONFIG_CHANGE');
    expect(err.error.message).toMatch(/data dirs: .*- output/);
    for (const p of data) expect(existsSync(path.join(A, p)), p).toBe(true);
    const accepted = syncSchema.parse(JSON.parse(ok(dsg(A, sb.env, '--json', 'sync', '--accept-config')).stdout));
    expect(accepted.counts).toMatchObject({ deletedRemote: 0, deletedLocal: 0 });
    // from now on A scans only input too, and still deletes nothing from the repository
    expect(syncSchema.parse(JSON.parse(ok(dsg(A, sb.env, '--json', 'sync')).stdout)).counts).toMatchObject({
      deletedRemote: 0,
      deletedLocal: 0,
    });
    expect(entriesOf(repo)).toEqual([...data, 'tasks/import/input/new.csv'].sort());
  });
});
