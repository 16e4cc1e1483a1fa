/**
 * `dsg diff PATH` through the built binary, two working copies of one posix
 * repository: the file here, as of the last sync and in the repository, with
 * a unified diff of each change for text, sizes and hashes otherwise;
 * `--offline` connects to nothing. It never writes into the project.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { diffSchema, errorDocSchema } from '../src/output/json-schemas.js';
import { dsg, listing, ok, write } from './helpers.js';
import { removeCopies, twoCopies } from './two-copies.js';

afterAll(removeCopies);

/** A and B at s1 with input/a.txt = `a v1`; A syncs `a from A` (s2); B edits its copy without syncing. */
function bothChanged(): ReturnType<typeof twoCopies> {
  const t = twoCopies(['a', 'b']);
  write(path.join(t.A, 'input', 'a.txt'), 'a v1\na from A\n');
  ok(dsg(t.A, t.env, 'sync'));
  write(path.join(t.B, 'input', 'a.txt'), 'a v1 edited by B\n');
  return t;
}

describe('dsg diff', () => {
  it('a text file changed on both sides: each change against the last sync as a unified diff; nothing written', () => {
    const t = bothChanged();
    const before = listing(t.B);
    const r = ok(dsg(t.B, t.env, 'diff', 'input/a.txt'));
    expect(r.stdout).toMatch(
      /^input\/a\.txt\n {2}local: +file 17 B {2}hash [0-9a-f]{16} .*\(changed here since the last sync\)$/m,
    );
    expect(r.stdout).toMatch(/^ {2}last sync: +s1 {2}file 5 B .* user ana@example\.org$/m);
    expect(r.stdout).toMatch(/^ {2}repository: s2 {2}file 14 B .*\(changed there since the last sync\)$/m);
    expect(r.stdout).toContain(
      '--- input/a.txt (last sync s1)\n+++ input/a.txt (local)\n@@ -1,1 +1,1 @@\n-a v1\n+a v1 edited by B\n',
    );
    expect(r.stdout).toContain(
      '--- input/a.txt (last sync s1)\n+++ input/a.txt (repository s2)\n@@ -1,1 +1,2 @@\n a v1\n+a from A\n',
    );
    const d = diffSchema.parse(JSON.parse(ok(dsg(path.join(t.B, 'input'), t.env, '--json', 'diff', 'a.txt')).stdout));
    expect(d).toMatchObject({
      path: 'input/a.txt',
      offline: false,
      changedHere: true,
      changedInRepository: true,
      local: { present: true, type: 'file', size: 17, user: null },
      lastSync: { snapshotId: 's1', size: 5, user: 'ana@example.org' },
      repository: { snapshotId: 's2', size: 14 },
    });
    expect(d.patches.map((p) => p.to)).toEqual(['local', 'repository']);
    expect(listing(t.B)).toEqual(before);
  });

  it('no change anywhere: says so; a file deleted here diffs against /dev/null', () => {
    const t = twoCopies(['a', 'b']);
    expect(ok(dsg(t.B, t.env, 'diff', 'input/b.txt')).stdout).toMatch(/\nno differences\n$/);
    rmSync(path.join(t.B, 'input', 'b.txt'));
    const d = diffSchema.parse(JSON.parse(ok(dsg(t.B, t.env, '--json', 'diff', 'input/b.txt')).stdout));
    expect(d.local.present).toBe(false);
    expect(d.changedInRepository).toBe(false);
    expect(d.patches).toEqual([
      { from: 'lastSync', to: 'local', patch: expect.stringContaining('+++ /dev/null\n@@ -1,1 +0,0 @@\n-b v1\n') },
    ]);
  });

  it('a binary file: sizes and hashes, no text diff', () => {
    const t = twoCopies(['a']);
    writeFileSync(path.join(t.A, 'input', 'bin.dat'), Buffer.from([0, 1, 2, 3]));
    ok(dsg(t.A, t.env, 'sync'));
    ok(dsg(t.B, t.env, 'sync'));
    writeFileSync(path.join(t.B, 'input', 'bin.dat'), Buffer.from([0, 1, 2, 3, 4, 5]));
    const r = ok(dsg(t.B, t.env, 'diff', 'input/bin.dat'));
    expect(r.stdout).toMatch(/local: +file 6 B/);
    expect(r.stdout).toMatch(/\(no text diff: not text, or larger than 1\.0 MiB\)/);
    const d = diffSchema.parse(JSON.parse(ok(dsg(t.B, t.env, '--json', 'diff', 'input/bin.dat')).stdout));
    expect(d.patches).toEqual([]);
    expect(d.local.hash).not.toBe(d.lastSync.hash);
  });

  it('--offline: against the last sync only, with the repository host unreachable', () => {
    const t = bothChanged();
    const local = path.join(t.B, '.dsg', 'config.local.yml');
    writeFileSync(local, readFileSync(local, 'utf8').replace('localhost', 'no-such-host.invalid'));
    const r = ok(dsg(t.B, t.env, 'diff', 'input/a.txt', '--offline'));
    expect(r.stdout).toMatch(/repository: not asked \(--offline\)/);
    expect(r.stdout).toMatch(/no text diff offline: the last sync's bytes are in the repository/);
    expect(r.stderr).not.toMatch(/no-such-host/);
    const d = diffSchema.parse(JSON.parse(ok(dsg(t.B, t.env, '--json', 'diff', 'input/a.txt', '--offline')).stdout));
    expect(d).toMatchObject({ offline: true, repository: null, changedHere: true, changedInRepository: null });
    // unchanged here: no bytes needed, and it says so offline too
    expect(ok(dsg(t.B, t.env, 'diff', 'input/b.txt', '--offline')).stdout).toMatch(/\nno differences\n$/);
  });

  it('bad input: a path outside the project, one nowhere, a directory — clear errors, nothing changed', () => {
    const t = bothChanged();
    const before = listing(t.B);
    const outside = dsg(t.B, t.env, '--json', 'diff', '../elsewhere.txt');
    expect(outside.code).toBe(2);
    expect(errorDocSchema.parse(JSON.parse(outside.stdout)).error.message).toMatch(/is not inside the project/);
    const nowhere = dsg(t.B, t.env, 'diff', 'input/nope.txt');
    expect(nowhere.code).toBe(1);
    expect(nowhere.stderr).toMatch(
      /input\/nope\.txt is not here, not in the last sync \(s1\) and not in the repository/,
    );
    const dir = dsg(t.B, t.env, 'diff', 'input');
    expect(dir.code).toBe(1);
    expect(dir.stderr).toMatch(/is not a regular file/);
    expect(dsg(t.B, t.env, 'diff').code).toBe(2);
    expect(listing(t.B)).toEqual(before);
  });
});
