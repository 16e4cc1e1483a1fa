import { existsSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect, it } from 'vitest';
import type { z } from 'zod';
import {
  errorDocSchema,
  logSchema,
  blameSchema,
  snapfetchSchema,
  snapmountSchema,
  statusSchema,
  syncSchema,
  validateChainSchema,
  listFilesSchema,
} from '../src/output/json-schemas.js';
import { dsg, listing, ok, sandbox, write, type RunResult } from './helpers.js';

export interface Backend {
  label: string;
  /** init options naming the repository */
  initArgs(name: string): string[];
  /** the clone source for repository name */
  cloneArgs(name: string): string[];
  /** extra user-config lines (ssh key, known_hosts) */
  userYaml?: string;
  /** listing of the repository side, for "nothing changed" */
  repoListing(name: string): Record<string, string> | string[];
  /** the repository lock file */
  lockFile(name: string): string;
  /** snapmount makes a view that --unmount removes (ZFS clone), rather than showing the snapshot dir (posix) */
  snapmountMakesView?: boolean;
}

function json<S extends z.ZodType>(schema: S, r: RunResult): z.output<S> {
  return schema.parse(JSON.parse(r.stdout));
}

const noMeta = (rel: string): boolean => rel === '.dsg' || rel.startsWith('.dsg/') || rel === 'conflicts.txt';

/** The same end-to-end story for every backend/transport: two working dirs, one repository. */
export function e2eSuite(b: Backend): void {
  it(`${b.label}: init, clone, status, sync both ways, log, blame, snapfetch, validate-chain, conflict`, () => {
    const sb = sandbox(`user_id: ana@example.org\nuser_name: Ana\n${b.userYaml ?? ''}`);
    const name = `demo-${process.pid}-${Date.now() % 100000}`;
    const A = path.join(sb.dir, 'a');
    const B = path.join(sb.dir, 'b');
    write(path.join(A, 'input', 'survey.csv'), 'id,name\n1,Ana\n');
    write(path.join(A, 'output', 'result.txt'), 'v1\n');
    const v1 = readFileSync(path.join(A, 'input', 'survey.csv'));

    const init = json(syncSchema, ok(dsg(A, sb.env, '--json', 'init', ...b.initArgs(name), '--repo-name', name)));
    expect(init).toMatchObject({ command: 'init', snapshotId: 's1', committed: true });
    expect(init.counts.uploaded).toBe(3); // two data files + .dsgconfig.yml

    // edit and sync → s2
    write(path.join(A, 'input', 'survey.csv'), 'id,name\n1,Ana\n2,Bo\n');
    const st = json(statusSchema, ok(dsg(A, sb.env, '--json', 'status')));
    expect(st.upload).toEqual(['input/survey.csv']);
    expect(st.paths[0]?.state).toBe('sLCR__C_eq_R_ne_L');
    expect(json(syncSchema, ok(dsg(A, sb.env, '--json', 'sync', '-m', 'second wave')))).toMatchObject({
      snapshotId: 's2',
      committed: true,
    });

    // clone into B
    const cl = json(syncSchema, ok(dsg(sb.dir, sb.env, '--json', 'clone', ...b.cloneArgs(name), 'b')));
    expect(cl).toMatchObject({ command: 'clone', snapshotId: 's2' });
    expect(readFileSync(path.join(B, 'input', 'survey.csv'), 'utf8')).toBe('id,name\n1,Ana\n2,Bo\n');
    expect(json(statusSchema, ok(dsg(B, sb.env, '--json', 'status'))).clean).toBe(true);

    // edit in B, sync back, A downloads
    write(path.join(B, 'output', 'result.txt'), 'v2 from b\n');
    expect(json(syncSchema, ok(dsg(B, sb.env, '--json', 'sync', '-m', 'from b'))).snapshotId).toBe('s3');
    const down = json(syncSchema, ok(dsg(A, sb.env, '--json', 'sync')));
    expect(down.counts.downloaded).toBe(1);
    expect(readFileSync(path.join(A, 'output', 'result.txt'), 'utf8')).toBe('v2 from b\n');

    // log, blame, list-files
    const log = json(logSchema, ok(dsg(A, sb.env, '--json', 'log')));
    expect(log.snapshots.map((s) => s.snapshotId)).toEqual(['s3', 's2', 's1']);
    expect(log.snapshots[1]).toMatchObject({
      message: 'second wave',
      user: 'ana@example.org',
      changed: 1,
      added: 0,
      removed: 0,
    });
    const human = ok(dsg(A, sb.env, 'log', '-n', '1')).stdout;
    expect(human).toContain('s3');
    expect(human).not.toContain('s2 ');
    const blame = json(blameSchema, ok(dsg(path.join(A, 'input'), sb.env, '--json', 'blame', 'survey.csv')));
    expect(blame.events.map((e) => [e.snapshotId, e.change])).toEqual([
      ['s1', 'added'],
      ['s2', 'changed'],
    ]);
    expect(json(listFilesSchema, ok(dsg(A, sb.env, '--json', 'list-files'))).entries.map((e) => e.path)).toContain(
      'output/result.txt',
    );

    // snapfetch of the old version: bytes equal, outside the project; to stdout; -o never overwrites without --force
    const sf = json(snapfetchSchema, ok(dsg(A, sb.env, '--json', 'snapfetch', 'input/survey.csv', '--snapshot', 's1')));
    expect(readFileSync(sf.output)).toEqual(v1);
    expect(path.relative(A, sf.output).startsWith('..')).toBe(true);
    expect(ok(dsg(A, sb.env, 'snapfetch', 'input/survey.csv', '--snapshot', 's1')).stdout).toBe(v1.toString());
    const fetched = path.join(sb.dir, 'survey-s1.csv');
    ok(dsg(A, sb.env, 'snapfetch', 'input/survey.csv', '--snapshot', 's1', '-o', fetched));
    const again = dsg(A, sb.env, 'snapfetch', 'input/survey.csv', '--snapshot', 's1', '-o', fetched);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/already exists[\s\S]*--force/);
    ok(dsg(A, sb.env, 'snapfetch', 'input/survey.csv', '--snapshot', 's1', '-o', fetched, '--force'));
    const missing = dsg(A, sb.env, 'snapfetch', 'input/survey.csv', '--snapshot', 's9');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('s9 does not exist');

    // snapmount: s1 readable on the repository host (here the same machine); a later run undoes it
    const sm = json(snapmountSchema, ok(dsg(A, sb.env, '--json', 'snapmount', '--snapshot', 's1')));
    expect(readFileSync(path.join(sm.mountpoint, 'input', 'survey.csv'))).toEqual(v1);
    expect(ok(dsg(A, sb.env, 'snapmount', '--unmount', sm.mountpoint)).stdout).toContain(`unmounted ${sm.mountpoint}`);
    if (b.snapmountMakesView) {
      expect(existsSync(path.join(sm.mountpoint, 'input', 'survey.csv'))).toBe(false);
      const again = dsg(A, sb.env, 'snapmount', '--unmount', sm.mountpoint);
      expect(again.code).toBe(1);
      expect(again.stderr).toMatch(/no snapshot of .* is mounted at/);
    }

    expect(json(validateChainSchema, ok(dsg(A, sb.env, '--json', 'validate-chain')))).toMatchObject({
      ok: true,
      snapshots: 3,
    });

    // conflict: both change the same file → exit 3, conflicts.txt, nothing changed anywhere
    ok(dsg(B, sb.env, 'sync')); // B catches up (nothing to do)
    write(path.join(A, 'output', 'result.txt'), 'A says\n');
    ok(dsg(A, sb.env, 'sync', '-m', 'from a'));
    write(path.join(B, 'output', 'result.txt'), 'B says\n');
    const beforeB = listing(B, noMeta);
    const beforeRepo = b.repoListing(name);
    const conf = dsg(B, sb.env, '--json', 'sync');
    expect(conf.code).toBe(3);
    const doc = json(errorDocSchema, conf);
    expect(doc).toMatchObject({ exitCode: 3, error: { code: 'CONFLICT' } });
    expect(conf.stderr).toMatch(/conflicting[\s\S]*hint: .*conflicts\.txt/);
    const conflicts = readFileSync(path.join(B, 'conflicts.txt'), 'utf8');
    expect(conflicts).toContain('output/result.txt');
    expect(listing(B, noMeta)).toEqual(beforeB);
    expect(b.repoListing(name)).toEqual(beforeRepo);

    // resolve: keep the local version
    writeFileSync(path.join(B, 'conflicts.txt'), conflicts.replace(/resolution: *$/m, 'resolution: L'));
    expect(json(syncSchema, ok(dsg(B, sb.env, '--json', 'sync', '--continue'))).snapshotId).toBe('s5');
    expect(existsSync(path.join(B, 'conflicts.txt'))).toBe(false);
    ok(dsg(A, sb.env, 'sync'));
    expect(readFileSync(path.join(A, 'output', 'result.txt'), 'utf8')).toBe('B says\n');
    expect(json(validateChainSchema, ok(dsg(A, sb.env, '--json', 'validate-chain'))).snapshots).toBe(5);

    // resolve R: the local loser is kept as <name>~<ts>~ — unless the user config says backup_on_conflict: false
    const resolveRemote = (mine: string, theirs: string): string[] => {
      write(path.join(A, 'output', 'result.txt'), theirs);
      ok(dsg(A, sb.env, 'sync'));
      write(path.join(B, 'output', 'result.txt'), mine);
      expect(dsg(B, sb.env, 'sync').code).toBe(3);
      const text = readFileSync(path.join(B, 'conflicts.txt'), 'utf8');
      writeFileSync(path.join(B, 'conflicts.txt'), text.replace(/resolution: *$/m, 'resolution: R'));
      ok(dsg(B, sb.env, 'sync', '--continue'));
      expect(readFileSync(path.join(B, 'output', 'result.txt'), 'utf8')).toBe(theirs);
      return Object.keys(listing(path.join(B, 'output'))).filter((n) => /^result\.txt~\d{8}T\d{6}-\d{4}~$/.test(n));
    };
    const kept = resolveRemote('B loses\n', 'A wins\n');
    expect(kept).toHaveLength(1);
    expect(readFileSync(path.join(B, 'output', kept[0]!), 'utf8')).toBe('B loses\n');
    unlinkSync(path.join(B, 'output', kept[0]!));
    writeFileSync(
      path.join(sb.dir, 'cfg', 'dsg.yml'),
      `user_id: ana@example.org\nuser_name: Ana\nbackup_on_conflict: false\n${b.userYaml ?? ''}`,
    );
    expect(resolveRemote('B loses again\n', 'A wins again\n')).toEqual([]);
  });

  it(`${b.label}: locked repository → exit 4 naming the holder; illegal names → refused; nothing changed`, () => {
    const sb = sandbox(`user_id: bo@example.org\n${b.userYaml ?? ''}`);
    const name = `lock-${process.pid}-${Date.now() % 100000}`;
    const A = path.join(sb.dir, 'a');
    write(path.join(A, 'input', 'x.csv'), 'x\n');
    ok(dsg(A, sb.env, 'init', ...b.initArgs(name), '--repo-name', name));
    write(path.join(A, 'input', 'x.csv'), 'changed\n');

    writeFileSync(
      b.lockFile(name),
      JSON.stringify({
        holder: { user: 'carl@example.org', host: os.hostname(), pid: process.pid, since: '2026-01-01T00:00:00Z' },
        agent: { host: os.hostname(), pid: process.pid, session: 'test' },
      }) + '\n',
    );
    const beforeA = listing(A, noMeta);
    const beforeRepo = b.repoListing(name);
    const locked = dsg(A, sb.env, '--json', 'sync');
    expect(locked.code).toBe(4);
    expect(json(errorDocSchema, locked).error.code).toBe('LOCKED');
    expect(locked.stderr).toMatch(/locked by carl@example\.org on .* since 2026-01-01/);
    expect(listing(A, noMeta)).toEqual(beforeA);
    expect(b.repoListing(name)).toEqual(beforeRepo);
    // unlocking lets the sync through
    unlinkSync(b.lockFile(name));

    write(path.join(A, 'input', 'bad name ~'), 'x');
    write(path.join(A, 'input', 'aux.csv'), 'x');
    const before2 = listing(A, noMeta);
    const st = json(statusSchema, ok(dsg(A, sb.env, '--json', 'status')));
    expect(st.invalidNames.map((i) => i.path).sort()).toEqual(['input/aux.csv', 'input/bad name ~']);
    const refused = dsg(A, sb.env, 'sync');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/cannot be synced[\s\S]*hint: Rename or remove/);
    expect(listing(A, noMeta)).toEqual(before2);
    expect(b.repoListing(name)).toEqual(beforeRepo);
  });
}
