/**
 * `dsg snapfetch` never drops a file into a data directory by default (it
 * used to write `<file>.sN` beside the file, which the next sync uploaded):
 * to stdout when stdout is not a terminal or with `-o -`, else a new file
 * under the temp dir; an explicit `-o` inside a data dir works and says the
 * next sync will upload it. Through the built binary, posix on this machine.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { errorDocSchema, snapfetchSchema, statusSchema } from '../src/output/json-schemas.js';
import { BIN, dsg, listing, ok, write } from './helpers.js';
import { shellCommand } from '@dsg/transports';
import { removeCopies, twoCopies } from './two-copies.js';

afterAll(removeCopies);

/** A copy at s2 whose input/a.txt was `a v1` at s1. */
function atS2(): ReturnType<typeof twoCopies> {
  const t = twoCopies(['a']);
  write(path.join(t.A, 'input', 'a.txt'), 'a v2\n');
  ok(dsg(t.A, t.env, 'sync'));
  return t;
}

const clean = (dir: string, env: NodeJS.ProcessEnv): boolean =>
  statusSchema.parse(JSON.parse(ok(dsg(dir, env, '--json', 'status')).stdout)).clean;

describe('snapfetch: where the old version goes', () => {
  it('to stdout on a pipe (no -o) and with -o -; nothing is written in the project', () => {
    const t = atS2();
    const before = listing(t.A, (rel) => rel.startsWith('.dsg'));
    const piped = ok(dsg(t.A, t.env, 'snapfetch', 'input/a.txt', '--snapshot', 's1'));
    expect(piped.stdout).toBe('a v1\n');
    expect(piped.stderr).toBe('');
    expect(ok(dsg(t.A, t.env, 'snapfetch', 'input/a.txt', '-s', 's1', '-o', '-')).stdout).toBe('a v1\n');
    // from a subdirectory, with a path relative to it
    expect(ok(dsg(path.join(t.A, 'input'), t.env, 'snapfetch', 'a.txt', '-s', 's2', '-o', '-')).stdout).toBe('a v2\n');
    expect(listing(t.A, (rel) => rel.startsWith('.dsg'))).toEqual(before);
    expect(clean(t.A, t.env)).toBe(true);
  });

  it('--json without -o: a new file under the temp dir, named in the document; the project unchanged', () => {
    const t = atS2();
    const d = snapfetchSchema.parse(
      JSON.parse(ok(dsg(t.A, t.env, '--json', 'snapfetch', 'input/a.txt', '--snapshot', 's1')).stdout),
    );
    expect(path.relative(t.A, d.output).startsWith('..')).toBe(true);
    expect(path.basename(d.output)).toBe('a.txt.s1');
    expect(readFileSync(d.output, 'utf8')).toBe('a v1\n');
    expect(existsSync(path.join(t.A, 'input', 'a.txt.s1'))).toBe(false);
    expect(clean(t.A, t.env)).toBe(true);
  });

  it('on a terminal without -o: a new file under the temp dir, said; the project unchanged', () => {
    const t = atS2();
    const before = listing(t.A, (rel) => rel.startsWith('.dsg'));
    // script(1) gives dsg a real terminal; the command line is built from fixed, quoted arguments
    const r = spawnSync(
      'script',
      ['-qfec', shellCommand(['node', BIN, 'snapfetch', 'input/a.txt', '-s', 's1']), '/dev/null'],
      {
        cwd: t.A,
        env: { ...t.env, TERM: 'xterm' },
        encoding: 'utf8',
      },
    );
    expect(r.status).toBe(0);
    const m = /wrote input\/a\.txt as of s1 to (\S+) \(5 B, hash [0-9a-f]+\)/.exec(r.stdout);
    expect(m, r.stdout).not.toBeNull();
    const out = path.resolve(t.A, m![1]!);
    expect(path.relative(t.A, out).startsWith('..')).toBe(true);
    expect(readFileSync(out, 'utf8')).toBe('a v1\n');
    expect(listing(t.A, (rel) => rel.startsWith('.dsg'))).toEqual(before);
  });

  it('an explicit -o inside a data dir is written and said: the next sync uploads it', () => {
    const t = atS2();
    const r = ok(dsg(t.A, t.env, 'snapfetch', 'input/a.txt', '-s', 's1', '-o', 'input/a-old.txt'));
    expect(r.stderr).toMatch(
      /warning: input\/a-old\.txt is inside the data directory input\/: the next `dsg sync` will upload it/,
    );
    expect(readFileSync(path.join(t.A, 'input', 'a-old.txt'), 'utf8')).toBe('a v1\n');
    expect(statusSchema.parse(JSON.parse(ok(dsg(t.A, t.env, '--json', 'status')).stdout)).upload).toEqual([
      'input/a-old.txt',
    ]);
    // outside the data dirs: no warning
    const o = ok(dsg(t.A, t.env, 'snapfetch', 'input/a.txt', '-s', 's1', '-o', path.join(t.A, '..', 'old.txt')));
    expect(o.stderr).toBe('');
  });

  it('refuses -o - with --json, and a missing snapshot, before writing anything', () => {
    const t = atS2();
    const before = listing(t.A);
    const both = dsg(t.A, t.env, '--json', 'snapfetch', 'input/a.txt', '-s', 's1', '-o', '-');
    expect(both.code).toBe(2);
    expect(errorDocSchema.parse(JSON.parse(both.stdout)).error.message).toMatch(/-o - writes the file to stdout/);
    const missing = dsg(t.A, t.env, 'snapfetch', 'input/a.txt', '-s', 's9');
    expect(missing.code).toBe(1);
    expect(missing.stdout).toBe('');
    expect(missing.stderr).toMatch(/s9 does not exist/);
    expect(listing(t.A)).toEqual(before);
  });
});
