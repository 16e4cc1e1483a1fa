/**
 * Backups you can see and bound, through the built binary with two working
 * copies of one posix repository: each sync that keeps backups says so (text
 * and --json), `dsg backups` lists them, `dsg clean --backups` removes them
 * (never anything outside .dsg/backup; bad input refused with nothing
 * changed), and the personal `backups:` limits are applied after a sync.
 */
import { appendFileSync, existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { backupsSchema, cleanSchema, errorDocSchema, syncSchema } from '../src/output/json-schemas.js';
import { dsg, listing, ok, write } from './helpers.js';
import { removeCopies, twoCopies, type TwoCopies } from './two-copies.js';

afterAll(removeCopies);

/** A changes a.txt and deletes b.txt and syncs: B's next sync replaces its a.txt and deletes its b.txt. */
function changeInA(t: TwoCopies, content = 'a from A\n'): void {
  write(path.join(t.A, 'input', 'a.txt'), content);
  rmSync(path.join(t.A, 'input', 'b.txt'), { force: true });
  ok(dsg(t.A, t.env, 'sync'));
}

/** The original paths kept under dir's .dsg/backup (none when it does not exist). */
const backupFiles = (dir: string): string[] =>
  existsSync(path.join(dir, '.dsg', 'backup'))
    ? Object.keys(listing(path.join(dir, '.dsg', 'backup'))).map((p) => p.split(path.sep).slice(1).join('/'))
    : [];

describe('backups kept by a sync', () => {
  it('says how many and how big in text and --json, and keeps no copy of the old metadata', () => {
    const t = twoCopies();
    changeInA(t);
    const r = ok(dsg(t.B, t.env, 'sync'));
    expect(r.stdout).toMatch(/^kept 2 backups \(10 B\) in \.dsg\/backup; remove with `dsg clean --backups`$/m);
    expect(backupFiles(t.B).sort()).toEqual(['input/a.txt', 'input/b.txt']);
    // the next change, under --json
    write(path.join(t.A, 'input', 'c.txt'), 'c from A\n');
    ok(dsg(t.A, t.env, 'sync'));
    const d = syncSchema.parse(JSON.parse(ok(dsg(t.B, t.env, '--json', 'sync')).stdout));
    expect(d.backups?.kept.map((k) => [k.original, k.size])).toEqual([['input/c.txt', 5]]);
    expect(d.backups?.kept[0]!.path).toMatch(/^\.dsg\/backup\/\d{8}T\d{9}Z-[0-9a-f]+\/input\/c\.txt$/);
    expect(d.backups).toMatchObject({ keptBytes: 5, removed: [], total: { files: 3, bytes: 15 } });
    // A's syncs replaced nothing of A's: nothing kept, nothing said
    const a = ok(dsg(t.A, t.env, 'sync'));
    expect(a.stdout).not.toMatch(/kept/);
    expect(backupFiles(t.A)).toEqual([]);
  });

  it('names the local versions that lost a conflict, in text and --json', () => {
    const t = twoCopies();
    write(path.join(t.A, 'input', 'a.txt'), 'a from A\n');
    ok(dsg(t.A, t.env, 'sync'));
    write(path.join(t.B, 'input', 'a.txt'), 'a from B\n');
    expect(dsg(t.B, t.env, 'sync').code).toBe(3);
    const file = path.join(t.B, 'conflicts.txt');
    writeFileSync(file, readFileSync(file, 'utf8').replace(/^resolution: *$/gm, 'resolution: R'));
    const d = syncSchema.parse(JSON.parse(ok(dsg(t.B, t.env, '--json', 'sync', '--continue')).stdout));
    expect(d.backups?.conflictCopies).toHaveLength(1);
    const copy = d.backups!.conflictCopies[0]!;
    expect(copy).toMatch(/^input\/a\.txt~\d{8}T\d{6}[+-]\d{4}~$/);
    expect(readFileSync(path.join(t.B, copy), 'utf8')).toBe('a from B\n');
    // the same in text, on a second conflict
    write(path.join(t.A, 'input', 'c.txt'), 'c from A\n');
    ok(dsg(t.A, t.env, 'sync'));
    write(path.join(t.B, 'input', 'c.txt'), 'c from B\n');
    expect(dsg(t.B, t.env, 'sync').code).toBe(3);
    writeFileSync(file, readFileSync(file, 'utf8').replace(/^resolution: *$/gm, 'resolution: R'));
    const r = ok(dsg(t.B, t.env, 'sync', '--continue'));
    expect(r.stdout).toMatch(
      /kept your 1 version that lost the conflict beside the file:\n {2}input\/c\.txt~\d{8}T\d{6}[+-]\d{4}~\n/,
    );
  });
});

describe('dsg backups and dsg clean --backups', () => {
  it('lists every kept file with its original path, time and size, and the totals', () => {
    const t = twoCopies();
    expect(ok(dsg(t.B, t.env, 'backups')).stdout).toBe('no backups in .dsg/backup\n');
    changeInA(t);
    ok(dsg(t.B, t.env, 'sync'));
    const d = backupsSchema.parse(JSON.parse(ok(dsg(t.B, t.env, '--json', 'backups')).stdout));
    expect(d.backups.map((b) => [b.original, b.size, b.pending])).toEqual([
      ['input/a.txt', 5, false],
      ['input/b.txt', 5, false],
    ]);
    expect(d).toMatchObject({ files: 2, bytes: 10, sets: 1, limits: { maxBytes: null, keepDays: null } });
    for (const b of d.backups) expect(readFileSync(path.join(t.B, b.path), 'utf8')).toBe(`${b.original[6]} v1\n`);
    // times in the user's zone (TZ), as log and blame show them; --json keeps UTC
    const text = ok(dsg(t.B, { ...t.env, TZ: 'Asia/Kolkata' }, 'backups')).stdout;
    expect(text).toMatch(/^\d{4}-\d\d-\d\dT[\d:]+\+05:30 +5 B {2}input\/a\.txt {2}\.dsg\/backup\/.*\/input\/a\.txt$/m);
    expect(d.backups[0]!.time).toMatch(/Z$/);
    expect(text).toMatch(/^2 backups, 10 B, from 1 sync; remove with `dsg clean --backups \[--older-than 7d\]`$/m);
  });

  it('clean --backups: --dry-run and --older-than keep them; without, all go; nothing outside .dsg/backup changes', () => {
    const t = twoCopies();
    changeInA(t);
    ok(dsg(t.B, t.env, 'sync'));
    const outside = (): Record<string, string> => listing(t.B, (rel) => rel.startsWith(path.join('.dsg', 'backup')));
    const before = outside();
    const dry = cleanSchema.parse(JSON.parse(ok(dsg(t.B, t.env, '--json', 'clean', '--backups', '--dry-run')).stdout));
    expect(dry).toMatchObject({ dryRun: true, target: 'backups', bytes: 10, olderThan: null });
    expect(dry.items.map((i) => path.basename(i.path)).sort()).toEqual(['a.txt', 'b.txt']);
    expect(backupFiles(t.B)).toHaveLength(2);
    expect(ok(dsg(t.B, t.env, 'clean', '--backups', '--older-than', '1d')).stdout).toBe(
      'no backups older than 1d to remove\n',
    );
    expect(backupFiles(t.B)).toHaveLength(2);
    expect(ok(dsg(t.B, t.env, 'clean', '--backups')).stdout).toBe('removed 2 backups (10 B) from .dsg/backup\n');
    expect(backupFiles(t.B)).toEqual([]);
    expect(outside()).toEqual(before);
    expect(ok(dsg(t.B, t.env, 'status')).stdout).toMatch(/nothing to sync/);
  });

  it('refuses a bad duration, --older-than without --backups, and the old options with --backups: exit 2, nothing removed', () => {
    const t = twoCopies();
    changeInA(t);
    ok(dsg(t.B, t.env, 'sync'));
    const before = listing(t.B);
    for (const [args, why] of [
      [['clean', '--backups', '--older-than', '7'], /--older-than "7" is not a duration/],
      [['clean', '--backups', '--older-than', '7days'], /--older-than "7days" is not a duration/],
      [['clean', '--backups', '--older-than', '-1d'], /--older-than "-1d" is not a duration/],
      [['clean', '--older-than', '7d', '--no-dry-run'], /--older-than goes with --backups/],
      [['clean', '--backups', '--max-age-days', '3'], /--max-age-days and --force belong to/],
    ] as const) {
      const r = dsg(t.B, t.env, '--json', ...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(errorDocSchema.parse(JSON.parse(r.stdout)).error.message).toMatch(why);
      expect(r.stderr).toMatch(/hint: /);
      expect(listing(t.B)).toEqual(before);
    }
  });
});

describe('the backups: limits (personal settings)', () => {
  it('max_size in .dsg/config.local.yml: the oldest backups beyond it go after a sync, and the summary says so', () => {
    const t = twoCopies();
    changeInA(t); // B keeps a (5 B) + b (5 B)
    ok(dsg(t.B, t.env, 'sync'));
    appendFileSync(path.join(t.B, '.dsg', 'config.local.yml'), 'backups:\n  max_size: 12B\n');
    write(path.join(t.A, 'input', 'c.txt'), 'c from A\n');
    ok(dsg(t.A, t.env, 'sync'));
    // B keeps c (5 B): 15 B > 12 B, so the oldest set (a, b: 10 B) goes
    const r = ok(dsg(t.B, t.env, 'sync'));
    expect(r.stdout).toMatch(/^kept 1 backup \(5 B\) in \.dsg\/backup/m);
    expect(r.stdout).toMatch(
      /^removed 2 older backups \(10 B\) beyond your backups limits \(max_size 12 B\); \.dsg\/backup now holds 5 B$/m,
    );
    expect(backupFiles(t.B)).toEqual(['input/c.txt']);
    const d = backupsSchema.parse(JSON.parse(ok(dsg(t.B, t.env, '--json', 'backups')).stdout));
    expect(d.limits).toEqual({ maxBytes: 12, keepDays: null });
    // a later rewrite of the local config by dsg keeps the setting as written
    expect(readFileSync(path.join(t.B, '.dsg', 'config.local.yml'), 'utf8')).toMatch(/max_size: 12B/);
  });

  it('the user config sets it for every copy; the local file wins key by key; keep_days 0 keeps none', () => {
    const t = twoCopies();
    appendFileSync(path.join(t.env['DSG_CONFIG_HOME']!, 'dsg.yml'), 'backups:\n  max_size: 1GiB\n  keep_days: 0\n');
    changeInA(t);
    const d = syncSchema.parse(JSON.parse(ok(dsg(t.B, t.env, '--json', 'sync')).stdout));
    expect(d.backups).toMatchObject({ kept: [], removedBytes: 10, total: { files: 0, bytes: 0 } });
    expect(d.backups?.limits).toEqual({ maxBytes: 1024 ** 3, keepDays: 0 });
    appendFileSync(path.join(t.B, '.dsg', 'config.local.yml'), 'backups:\n  keep_days: 30\n');
    write(path.join(t.A, 'input', 'c.txt'), 'c from A\n');
    ok(dsg(t.A, t.env, 'sync'));
    const e = syncSchema.parse(JSON.parse(ok(dsg(t.B, t.env, '--json', 'sync')).stdout));
    expect(e.backups).toMatchObject({ keptBytes: 5, removed: [], limits: { maxBytes: 1024 ** 3, keepDays: 30 } });
    expect(backupFiles(t.B)).toEqual(['input/c.txt']);
  });

  it('a bad setting is a config error naming the file and key, nothing synced; .dsgconfig.yml may not carry it', () => {
    const t = twoCopies();
    changeInA(t);
    const before = listing(t.B);
    const local = path.join(t.B, '.dsg', 'config.local.yml');
    const conf = readFileSync(local, 'utf8');
    for (const [yaml, why] of [
      ['backups:\n  max_size: lots\n', /backups\.max_size: expected a size such as 2GiB/],
      ['backups:\n  keep_days: -3\n', /backups\.keep_days: expected a number of days/],
      ['backups:\n  max_sise: 2GiB\n', /backups\.max_sise: unknown key/],
    ] as const) {
      writeFileSync(local, conf + yaml);
      const r = dsg(t.B, t.env, '--json', 'sync');
      expect(r.code, yaml).toBe(2);
      expect(errorDocSchema.parse(JSON.parse(r.stdout)).error.message).toMatch(why);
      expect(listing(t.B, (rel) => rel === path.join('.dsg', 'config.local.yml'))).toEqual(
        Object.fromEntries(Object.entries(before).filter(([k]) => k !== path.join('.dsg', 'config.local.yml'))),
      );
    }
    writeFileSync(local, conf);
    // the team's file is not where a personal limit goes
    appendFileSync(path.join(t.B, '.dsgconfig.yml'), 'backups:\n  max_size: 1B\n');
    const r = dsg(t.B, t.env, 'sync');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/backups: unknown key/);
    expect(readdirSync(path.join(t.B, 'input')).sort()).toEqual(['a.txt', 'b.txt', 'c.txt']);
  });
});

describe('dsg clean --no-dry-run', () => {
  it("runs the repository's recovery under its lock, then releases it (it used to fail: no lock held)", () => {
    const t = twoCopies();
    const d = cleanSchema.parse(JSON.parse(ok(dsg(t.B, t.env, '--json', 'clean', '--no-dry-run')).stdout));
    expect(d).toMatchObject({ dryRun: false, target: 'all', leftovers: [] });
    // the lock is free again: a sync goes through
    write(path.join(t.B, 'input', 'a.txt'), 'a after clean\n');
    expect(ok(dsg(t.B, t.env, 'sync')).stdout).toMatch(/^s2 committed/m);
  });
});
