/**
 * Ctrl-C during sync, init and clone, through the built dsg: the message
 * says what was rolled back and what the next command does, the exit code is
 * 130, and the next command does what it said. The SIGINT comes from the
 * process itself at a fault point (`DSG_FAULT=<point>:sigint`), so each case
 * is interrupted at a known step, not after a guessed delay. Also: times in
 * the user's time zone (TZ), with the stored ones kept in --json.
 */
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { errorDocSchema, logSchema } from '../src/output/json-schemas.js';
import { interruptMessage } from '../src/interrupt.js';
import { dsg, listing, ok, sandbox, write } from './helpers.js';

function setup() {
  const sb = sandbox();
  const A = path.join(sb.dir, 'a');
  const repos = mkdtempSync(path.join(os.tmpdir(), 'dsg-cli-sigint-'));
  write(path.join(A, 'input', 'a.csv'), 'a\n1\n');
  return { ...sb, A, repos };
}
const at = (env: NodeJS.ProcessEnv, point: string): NodeJS.ProcessEnv => ({ ...env, DSG_FAULT: `${point}:sigint` });
const logOf = (dir: string, env: NodeJS.ProcessEnv) =>
  logSchema.parse(JSON.parse(ok(dsg(dir, env, '--json', 'log')).stdout)).snapshots.map((s) => s.snapshotId);
const dataOf = (dir: string) => listing(dir, (rel) => rel.startsWith('.dsg'));

describe('Ctrl-C says what was rolled back and what comes next', () => {
  it('sync: before the transaction, during it, while committing, while applying locally', () => {
    const t = setup();
    ok(dsg(t.A, t.env, 'init', '--repo-type', 'posix', '--repo-path', t.repos, '--repo-name', 'ci'));
    write(path.join(t.A, 'input', 'b.csv'), 'b\n'.repeat(1000));
    const before = dataOf(t.A);

    // planned, nothing begun
    let r = dsg(t.A, at(t.env, 'sync.after-scan'), 'sync', '-m', 'two');
    expect(r.code).toBe(130);
    expect(r.stderr).toContain(
      'error: interrupted before anything was written: the repository is unchanged, and your files are unchanged',
    );
    expect(r.stderr).toContain('hint: Run `dsg sync` when you are ready.');
    expect(logOf(t.A, t.env)).toEqual(['s1']);

    // an upload done, the transaction open
    r = dsg(t.A, at(t.env, 'sync.after-upload'), 'sync', '-m', 'two');
    expect(r.code).toBe(130);
    expect(r.stderr).toContain('error: interrupted: the transaction was discarded — nothing reached the repository');
    expect(r.stderr).toContain('your files are unchanged');
    expect(r.stderr).toContain('hint: Run `dsg sync`; it resumes');
    expect(logOf(t.A, t.env)).toEqual(['s1']);
    expect(dataOf(t.A)).toEqual(before);

    // the commit asked of the repository
    r = dsg(t.A, at(t.env, 'sync.before-commit'), 'sync', '-m', 'two');
    expect(r.code).toBe(130);
    expect(r.stderr).toContain('error: interrupted while the repository committed the new snapshot');
    expect(r.stderr).toContain('hint: Run `dsg status`: it asks the repository');
    // what the hint says: status settles it, then sync goes on
    ok(dsg(t.A, t.env, 'status'));
    const done = ok(dsg(t.A, t.env, 'sync', '-m', 'two'));
    expect(done.stdout).toMatch(/s2 committed|already up to date with s2/);
    expect(logOf(t.A, t.env)).toEqual(['s2', 's1']);

    // a teammate's copy pulls s3: interrupted while its files are updated, the journal finishes it
    const B = path.join(t.dir, 'b');
    ok(dsg(t.dir, t.env, 'clone', `localhost:${path.join(t.repos, 'ci')}`, B));
    write(path.join(t.A, 'input', 'a.csv'), 'a\n1\n2\n');
    ok(dsg(t.A, t.env, 'sync', '-m', 'three'));
    r = dsg(B, at(t.env, 'client.commit.after-journal'), 'sync');
    expect(r.code).toBe(130);
    expect(r.stderr).toContain('error: interrupted while your files were being updated: every change is journaled');
    expect(r.stderr).toContain('hint: Run `dsg status` (or any dsg command): it finishes applying the snapshot');
    const st = ok(dsg(B, t.env, 'status'));
    expect(st.stderr).toContain('recovered interrupted transaction');
    expect(readFileSync(path.join(B, 'input', 'a.csv'), 'utf8')).toBe('a\n1\n2\n');
    expect(st.stdout).toContain('nothing to sync');
  });

  it('--json: one error document with exit code 130 and code INTERRUPTED', () => {
    const t = setup();
    ok(dsg(t.A, t.env, 'init', '--repo-type', 'posix', '--repo-path', t.repos, '--repo-name', 'cj'));
    write(path.join(t.A, 'input', 'b.csv'), 'b\n');
    const r = dsg(t.A, at(t.env, 'sync.after-upload'), '--json', 'sync');
    expect(r.code).toBe(130);
    const d = errorDocSchema.parse(JSON.parse(r.stdout));
    expect(d).toMatchObject({ exitCode: 130, error: { code: 'INTERRUPTED', name: 'InterruptedError' } });
    expect(d.error.message).toContain('the transaction was discarded');
  });

  it('init: the repository was not created; init again works', () => {
    const t = setup();
    const args = ['init', '--repo-type', 'posix', '--repo-path', t.repos, '--repo-name', 'ni'];
    const r = dsg(t.A, at(t.env, 'sync.after-upload'), ...args);
    expect(r.code).toBe(130);
    expect(r.stderr).toContain('nothing reached the repository (it was not created)');
    expect(r.stderr).toContain('hint: Run `dsg init`; it resumes');
    expect(existsSync(path.join(t.repos, 'ni', 'current'))).toBe(false);
    ok(dsg(t.A, t.env, ...args));
    expect(logOf(t.A, t.env)).toEqual(['s1']);
  });

  it('clone: nothing written to the repository; --resume (downloading) or status (applying) finishes it', () => {
    const t = setup();
    write(path.join(t.A, 'input', 'b.csv'), 'b\n');
    ok(dsg(t.A, t.env, 'init', '--repo-type', 'posix', '--repo-path', t.repos, '--repo-name', 'cl'));
    const repoBefore = listing(path.join(t.repos, 'cl'));
    const src = `localhost:${path.join(t.repos, 'cl')}`;

    const B = path.join(t.dir, 'b');
    let r = dsg(t.dir, at(t.env, 'sync.after-download'), 'clone', src, B);
    expect(r.code).toBe(130);
    expect(r.stderr).toContain('nothing was written to the repository (a clone only reads it)');
    expect(r.stderr).toContain(`hint: Run \`dsg clone ${src} ${B} --resume\`: it keeps what already arrived`);
    ok(dsg(t.dir, t.env, 'clone', src, B, '--resume'));
    expect(readFileSync(path.join(B, 'input', 'b.csv'), 'utf8')).toBe('b\n');

    const C = path.join(t.dir, 'c');
    r = dsg(t.dir, at(t.env, 'client.commit.after-journal'), 'clone', src, C);
    expect(r.code).toBe(130);
    expect(r.stderr).toContain('interrupted while the cloned files were put in place (every change is journaled)');
    expect(r.stderr).toContain(`hint: Run \`dsg status\` in ${C}: it finishes putting the files in place`);
    expect(ok(dsg(C, t.env, 'status')).stdout).toContain('nothing to sync');
    expect(readFileSync(path.join(C, 'input', 'b.csv'), 'utf8')).toBe('b\n');
    expect(listing(path.join(t.repos, 'cl'))).toEqual(repoBefore);
  });

  it('every stage has its message (the unit below the binary)', () => {
    for (const command of ['sync', 'init', 'clone'] as const)
      for (const stage of ['planning', 'staging', 'transaction', 'committing', 'applying'] as const) {
        const m = interruptMessage({ command, again: `dsg ${command}` }, stage);
        expect(m.what.length, `${command} ${stage}`).toBeGreaterThan(20);
        expect(m.todo).toMatch(/^Run `dsg /);
      }
  });
});

describe('times in the user’s time zone', () => {
  it('log, blame, list-files and status --offline convert; --json keeps the stored time', () => {
    const t = setup();
    ok(dsg(t.A, t.env, 'init', '--repo-type', 'posix', '--repo-path', t.repos, '--repo-name', 'tz'));
    const stored = logSchema.parse(JSON.parse(ok(dsg(t.A, t.env, '--json', 'log')).stdout)).snapshots[0]!.createdAt;
    expect(stored).toMatch(/-0[78]:00$/); // written in the manifest's zone (America/Los_Angeles)
    const instant = Date.parse(stored);
    const inZone = (out: string, offset: string): void => {
      const m = new RegExp(`(\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d${offset.replace('+', '\\+')})`).exec(out);
      expect(m, out).not.toBeNull();
      expect(Date.parse(m![1]!)).toBe(instant); // the same instant, another zone
    };
    inZone(ok(dsg(t.A, { ...t.env, TZ: 'Asia/Kolkata' }, 'log')).stdout, '+05:30');
    inZone(ok(dsg(t.A, { ...t.env, TZ: 'UTC' }, 'log')).stdout, '+00:00');
    inZone(ok(dsg(t.A, { ...t.env, TZ: 'Asia/Kolkata' }, 'blame', 'input/a.csv')).stdout, '+05:30');
    inZone(ok(dsg(t.A, { ...t.env, TZ: 'Asia/Kolkata' }, 'status', '--offline')).stdout, '+05:30');
    expect(ok(dsg(t.A, { ...t.env, TZ: 'Asia/Kolkata' }, 'list-files')).stdout).toMatch(/T\d\d:\d\d:\d\d\+05:30/);
    // the JSON and the manifest keep the stored zone
    const json = logSchema.parse(JSON.parse(ok(dsg(t.A, { ...t.env, TZ: 'Asia/Kolkata' }, '--json', 'log')).stdout));
    expect(json.snapshots[0]!.createdAt).toBe(stored);
    expect(readFileSync(path.join(t.A, '.dsg', 'last-sync.json'), 'utf8')).toContain(stored);
  });
});
