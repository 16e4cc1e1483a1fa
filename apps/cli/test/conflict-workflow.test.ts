/**
 * The conflict workflow through the built binary, two working copies of one
 * posix repository on this machine: a plain `dsg sync` re-run after a
 * conflict keeps the answers already written in conflicts.txt, and the `-m`
 * message of the sync that met the conflict is the one `--continue` commits
 * with (unless a new `-m` is given).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { logSchema } from '../src/output/json-schemas.js';
import { dsg, ok, write } from './helpers.js';
import { removeCopies, twoCopies, type TwoCopies } from './two-copies.js';

afterAll(removeCopies);

/** Both copies change the same files: B's next sync meets a conflict on each. */
function collide(t: TwoCopies, files: string[]): void {
  for (const f of files) write(path.join(t.A, 'input', `${f}.txt`), `${f} from A\n`);
  ok(dsg(t.A, t.env, 'sync', '-m', 'A edits'));
  for (const f of files) write(path.join(t.B, 'input', `${f}.txt`), `${f} from B\n`);
}

const lastMessage = (dir: string, env: NodeJS.ProcessEnv): string | null =>
  logSchema.parse(JSON.parse(ok(dsg(dir, env, '--json', 'log', '-n', '1')).stdout)).snapshots[0]!.message;

describe('conflict workflow', () => {
  it('a plain `dsg sync` re-run keeps the answers already written in conflicts.txt and says so', () => {
    const t = twoCopies();
    collide(t, ['a', 'c']);
    expect(dsg(t.B, t.env, 'sync').code).toBe(3);
    const file = path.join(t.B, 'conflicts.txt');
    // the user answers a only, then runs plain `dsg sync` again
    writeFileSync(file, readFileSync(file, 'utf8').replace(/(path: input\/a\.txt\n(?:.*\n)*?resolution:) *$/m, '$1 L'));
    const again = dsg(t.B, t.env, 'sync');
    expect(again.code).toBe(3);
    expect(again.stderr).toMatch(/kept the 1 answer\(s\) already written there/);
    const text = readFileSync(file, 'utf8');
    expect(text).toMatch(/path: input\/a\.txt\n[\s\S]*?resolution: L\n/);
    expect(text).toMatch(/path: input\/c\.txt\n[\s\S]*?resolution: \n/);
    // answering the rest is enough
    writeFileSync(file, text.replace(/^resolution: *$/gm, 'resolution: R'));
    ok(dsg(t.B, t.env, 'sync', '--continue'));
    expect(readFileSync(path.join(t.B, 'input', 'a.txt'), 'utf8')).toBe('a from B\n');
    expect(readFileSync(path.join(t.B, 'input', 'c.txt'), 'utf8')).toBe('c from A\n');
  });

  it('an answer for a path no longer in conflict is not carried over', () => {
    const t = twoCopies();
    collide(t, ['a', 'c']);
    expect(dsg(t.B, t.env, 'sync').code).toBe(3);
    const file = path.join(t.B, 'conflicts.txt');
    writeFileSync(file, readFileSync(file, 'utf8').replace(/^resolution: *$/gm, 'resolution: L'));
    // B makes c equal to A's version by hand: c is no longer a conflict
    write(path.join(t.B, 'input', 'c.txt'), 'c from A\n');
    expect(dsg(t.B, t.env, 'sync').code).toBe(3);
    const text = readFileSync(file, 'utf8');
    expect(text).toMatch(/path: input\/a\.txt\n[\s\S]*?resolution: L\n/);
    expect(text).not.toMatch(/input\/c\.txt/);
  });

  it('the -m message of the sync that met the conflict is what `--continue` commits with', () => {
    const t = twoCopies();
    collide(t, ['a']);
    expect(dsg(t.B, t.env, 'sync', '-m', 'field batch 7').code).toBe(3);
    const file = path.join(t.B, 'conflicts.txt');
    writeFileSync(file, readFileSync(file, 'utf8').replace(/^resolution: *$/gm, 'resolution: L'));
    ok(dsg(t.B, t.env, 'sync', '--continue'));
    expect(lastMessage(t.B, t.env)).toBe('field batch 7');
  });

  it('a new -m given to `--continue` wins; a later sync does not reuse the old one', () => {
    const t = twoCopies();
    collide(t, ['a']);
    expect(dsg(t.B, t.env, 'sync', '-m', 'first words').code).toBe(3);
    const file = path.join(t.B, 'conflicts.txt');
    writeFileSync(file, readFileSync(file, 'utf8').replace(/^resolution: *$/gm, 'resolution: L'));
    ok(dsg(t.B, t.env, 'sync', '--continue', '-m', 'second thoughts'));
    expect(lastMessage(t.B, t.env)).toBe('second thoughts');
    write(path.join(t.B, 'input', 'b.txt'), 'b again\n');
    ok(dsg(t.B, t.env, 'sync'));
    expect(lastMessage(t.B, t.env)).toBe('sync');
  });

  it('a failed --continue (bad answer) changes nothing and keeps the message for the next try', () => {
    const t = twoCopies();
    collide(t, ['a']);
    expect(dsg(t.B, t.env, 'sync', '-m', 'kept across tries').code).toBe(3);
    const file = path.join(t.B, 'conflicts.txt');
    const before = readFileSync(file, 'utf8');
    writeFileSync(file, before.replace(/^resolution: *$/gm, 'resolution: X'));
    const bad = dsg(t.B, t.env, 'sync', '--continue');
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/resolution must be L, C or R, not "X"/);
    expect(readFileSync(path.join(t.B, 'input', 'a.txt'), 'utf8')).toBe('a from B\n');
    writeFileSync(file, before.replace(/^resolution: *$/gm, 'resolution: L'));
    ok(dsg(t.B, t.env, 'sync', '--continue'));
    expect(lastMessage(t.B, t.env)).toBe('kept across tries');
  });
});
