/**
 * Files outside every data directory, through the built dsg: init and status
 * (online and --offline) say how many and where, --json lists them, and what
 * the ignore rules and junk directories exclude is not counted. Two working
 * copies: the clone has none of them (they were never synced) and says so.
 */
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { statusSchema, syncSchema } from '../src/output/json-schemas.js';
import { dsg, ok, sandbox, write } from './helpers.js';

describe('files outside the data dirs', () => {
  it('init and status name them; --json lists them; junk and ignored files are not counted', () => {
    const sb = sandbox();
    const A = path.join(sb.dir, 'a');
    const root = mkdtempSync(path.join(os.tmpdir(), 'dsg-cli-outside-'));
    write(path.join(A, 'tasks', 'import', 'input', 'raw.csv'), 'id\n1\n');
    write(path.join(A, 'tasks', 'import', 'hand', 'codes.csv'), 'a,b\n'); // data its owner may expect synced
    write(path.join(A, 'tasks', 'import', 'hand', 'names.csv'), 'n\n');
    write(path.join(A, 'tasks', 'import', 'src', 'run.py'), 'print(1)\n');
    write(path.join(A, 'tasks', 'import', 'src', 'notes.tmp'), 'ignored suffix\n');
    write(path.join(A, 'README.md'), '# p\n');
    write(path.join(A, 'node_modules', 'pkg', 'index.js'), 'junk\n');
    write(path.join(A, 'tasks', 'import', 'venv', 'lib', 'x.py'), 'junk\n');
    write(path.join(A, '.venv', 'lib', 'y.py'), 'hidden\n');
    const expected = {
      files: 4,
      directories: [
        { path: '', files: 1 },
        { path: 'tasks/import/hand', files: 2 },
        { path: 'tasks/import/src', files: 1 },
      ],
    };
    const line =
      '4 files in 3 directories are not in any data dir: ./, tasks/import/hand/, tasks/import/src/ (not synced;';

    const init = ok(dsg(A, sb.env, 'init', '--repo-type', 'posix', '--repo-path', root, '--repo-name', 'od'));
    expect(init.stdout).toContain(line);
    // the JSON of init (a second project: init runs once)
    const A2 = path.join(sb.dir, 'a2');
    write(path.join(A2, 'input', 'x.csv'), 'x\n');
    write(path.join(A2, 'docs', 'a.txt'), 'a\n');
    const init2 = syncSchema.parse(
      JSON.parse(
        ok(dsg(A2, sb.env, '--json', 'init', '--repo-type', 'posix', '--repo-path', root, '--repo-name', 'od2')).stdout,
      ),
    );
    expect(init2.outsideData).toEqual({ files: 1, directories: [{ path: 'docs', files: 1 }] });

    // status: text (the fast path answers on an unchanged tree) and --json, online and offline
    const st = ok(dsg(A, sb.env, 'status'));
    expect(st.stdout).toContain(line);
    expect(st.stdout).toContain('nothing to sync');
    for (const args of [['status'], ['status', '--offline']]) {
      const d = statusSchema.parse(JSON.parse(ok(dsg(A, sb.env, '--json', ...args)).stdout));
      expect(d.outsideData, args.join(' ')).toEqual(expected);
      expect(d.clean).toBe(true);
    }
    expect(ok(dsg(A, sb.env, 'status', '--offline')).stdout).toContain(line);
    // a changed tree goes through the full scan: the same count
    write(path.join(A, 'tasks', 'import', 'input', 'raw.csv'), 'id\n1\n2\n');
    const changed = statusSchema.parse(JSON.parse(ok(dsg(A, sb.env, '--json', 'status')).stdout));
    expect(changed.upload).toEqual(['tasks/import/input/raw.csv']);
    expect(changed.outsideData).toEqual(expected);
    // more than four directories: the line ends with …
    for (const d of ['b', 'c', 'd']) write(path.join(A, 'tasks', d, 'x.txt'), d);
    expect(ok(dsg(A, sb.env, 'status')).stdout).toContain(
      '7 files in 6 directories are not in any data dir: ./, tasks/b/, tasks/c/, tasks/d/, … (not synced;',
    );

    // the second working copy has only the data: nothing outside, no line
    const B = path.join(sb.dir, 'b');
    ok(dsg(sb.dir, sb.env, 'clone', `localhost:${path.join(root, 'od')}`, B));
    const sb2 = statusSchema.parse(JSON.parse(ok(dsg(B, sb.env, '--json', 'status')).stdout));
    expect(sb2.outsideData).toEqual({ files: 0, directories: [] });
    expect(ok(dsg(B, sb.env, 'status')).stdout).not.toContain('not in any data dir');
  });
});
