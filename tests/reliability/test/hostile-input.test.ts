// Hostile input (issue 10 item 5), end to end through the BUILT binary:
// a repository whose live manifest or files were edited on the server, and
// a working copy holding names, links and config dsg refuses. Every
// case must be refused with its documented exit code, error code, message
// and hint — and leave the working copy (.dsg included), the repository and
// a clone's destination exactly as they were. The one exception is an entry
// the name or link rules refuse inside a manifest that is otherwise sound
// (resealed: entry_count and entries_hash match): a manifest is read
// leniently (another tool may write such entries), so that entry is reported
// as held back — never written, not by status, not by a clone — and
// everything else works.
import {
  cpSync,
  existsSync,
  lutimesSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { requireSsh, requireZfs } from '@dsg/testenv';
import {
  dsgAsync,
  ok,
  pool,
  posixLocalBackend,
  write,
  zfsSshBackend,
  type Backend,
  type RunResult,
} from '../src/harness.js';
import {
  LAST_SYNC,
  addEntry,
  clientState,
  errorDoc,
  fileHash,
  listing,
  makeScene,
  readManifest,
  repoState,
  reseal,
  saveLive,
  serial,
  writeManifest,
  writeManifestText,
  type Scene,
} from '../src/hostile-helpers.js';

const zfs = requireZfs();
const ssh = requireSsh();
const backends: Backend[] = [];
const scenes: Scene[] = [];
afterAll(() => {
  for (const s of scenes) s.sb.remove();
  for (const b of backends) b.destroy();
});

interface Expect {
  exit?: number;
  code: string | RegExp;
  message: RegExp;
  hint: RegExp;
}

interface ServerCase extends Expect {
  label: string;
  /** edit the repository's live tree (manifest and/or files) as root */
  edit(s: Scene): void;
  /** live files besides the manifest the edit touches (restored afterwards) */
  touches?: string[];
  /** run only a clone (the name catalogue: the same check as sync, one process less per case) */
  cloneOnly?: boolean;
}

const CORRUPT = /manifest is corrupt or was written by an incompatible tool/;
const HASH_HINT = /^The repository is inconsistent/;
/** An entry added or edited without resealing the manifest: read (leniently), then refused as a whole by its entries_hash. */
const UNSEALED = {
  code: 'REMOTE_MANIFEST',
  message: /does not match its entries_hash/,
  hint: /^Nothing was changed\..*validate-chain/,
} as const;

function refusedAs(r: RunResult, what: string, e: Expect): void {
  const exit = e.exit ?? 1;
  expect(
    r.code,
    `${what}: exit ${r.code}\nstdout: ${r.stdout.slice(0, 1500)}\nstderr: ${r.stderr.slice(0, 1500)}`,
  ).toBe(exit);
  const doc = errorDoc(r);
  expect(doc.exitCode, what).toBe(exit);
  if (typeof e.code === 'string') expect(doc.error.code, what).toBe(e.code);
  else expect(doc.error.code, what).toMatch(e.code);
  expect(doc.error.message, what).toMatch(e.message);
  expect(doc.error.recoveryHint, what).toMatch(e.hint);
  // one line of what happened, one line of what to do — short, even for a 10 MB path
  expect(r.stderr, what).toMatch(/^error: [^\n]+\nhint: [^\n]+\n$/);
  expect(r.stderr.length, what).toBeLessThan(2048);
  expect(r.stdout.length, what).toBeLessThan(4096);
}

let cloneNo = 0;
async function runServerCase(s: Scene, c: ServerCase): Promise<void> {
  const restore = saveLive(s, [LAST_SYNC, ...(c.touches ?? [])]);
  try {
    c.edit(s);
    const beforeA = clientState(s.A);
    const beforeRepo = repoState(s);
    const dest = path.join(s.sb.dir, `clone-${++cloneNo}`, 'deep');
    // one after the other: opening a repository runs the agent's recovery under the lock, so a
    // clone beside a sync can make the sync report LOCKED (exit 4)
    const sync = c.cloneOnly ? null : await dsgAsync(s.A, s.sb.env, ['--json', 'sync', '-m', 'hostile'], 180_000);
    const clone = await dsgAsync(s.sb.dir, s.sb.env, ['--json', 'clone', ...s.b.cloneArgs(s.name), dest], 180_000);
    if (sync) refusedAs(sync, `${s.b.label} ${c.label}: sync`, c);
    refusedAs(clone, `${s.b.label} ${c.label}: clone`, c);
    expect(clientState(s.A), `${c.label}: working copy`).toEqual(beforeA);
    expect(repoState(s), `${c.label}: repository`).toEqual(beforeRepo);
    // the clone made nothing: not the destination, not its parent
    expect(existsSync(path.dirname(dest)), `${c.label}: clone destination`).toBe(false);
  } finally {
    restore();
  }
}

const entry =
  (p: string, e: Record<string, unknown>): ((s: Scene) => void) =>
  (s) =>
    writeManifest(s, addEntry(readManifest(s), p, e));
const add = (p: string): ((s: Scene) => void) => entry(p, {});
const link =
  (p: string, reference: string): ((s: Scene) => void) =>
  (s) => {
    const m = readManifest(s);
    m.entries[p] = { type: 'link', path: p, user: 'mallory@example.org', reference };
    m.metadata.entry_count = Object.keys(m.entries).length;
    writeManifest(s, m);
  };

/** What a server-side attacker can do to the manifest and the files; both backends. */
const SERVER_CASES: ServerCase[] = [
  { label: '../ path', edit: add('../evil.csv'), ...UNSEALED },
  { label: '.. inside a path', edit: add('input/../../evil.csv'), ...UNSEALED },
  { label: 'absolute path', edit: add('/tmp/evil.csv'), ...UNSEALED },
  { label: 'NUL in a path', edit: add('input/a\0b.csv'), ...UNSEALED },
  {
    label: 'duplicate path',
    edit: (s) => {
      const text = readFileSync(path.join(s.live, LAST_SYNC), 'utf8');
      const m = readManifest(s);
      const dup = `"input/x.csv": ${JSON.stringify({ ...m.entries['input/x.csv'], hash: fileHash('other') })},\n    "input/x.csv": {`;
      writeManifestText(s, text.replace('"input/x.csv": {', dup));
    },
    code: 'VALIDATION',
    message: /invalid manifest at entries\["input\/x\.csv"\]: duplicate key/,
    hint: CORRUPT,
  },
  { label: '10 MB path', edit: add(`input/${'a'.repeat(10 * 1024 * 1024)}`), ...UNSEALED },
  {
    label: 'hash that is not a hash',
    edit: (s) => {
      const m = readManifest(s);
      m.entries['input/from-b.csv']!['hash'] = '../../etc/passwd';
      writeManifest(s, m);
    },
    ...UNSEALED,
  },
  {
    label: 'entry of the wrong shape (filesize a string), manifest resealed',
    edit: (s) => {
      const m = readManifest(s);
      m.entries['input/from-b.csv']!['filesize'] = '6';
      writeManifest(s, reseal(m));
    },
    code: 'VALIDATION',
    message: /invalid manifest at entries\["input\/from-b\.csv"\]\.filesize/,
    hint: CORRUPT,
  },
  {
    label: 'entry edited without its entries_hash',
    edit: (s) => {
      const m = readManifest(s);
      m.entries['input/from-b.csv']!['hash'] = fileHash('forged');
      writeManifest(s, m);
    },
    code: 'REMOTE_MANIFEST',
    message: /does not match its entries_hash/,
    hint: /Nothing was changed.*validate-chain/,
  },
  {
    label: 'wrong hash, manifest resealed',
    edit: (s) => {
      const m = readManifest(s);
      m.entries['input/from-b.csv']!['hash'] = fileHash('forged');
      writeManifest(s, reseal(m));
    },
    code: 'HASH_MISMATCH',
    message: /hash mismatch for input\/from-b\.csv: expected [0-9a-f]{16}, received [0-9a-f]{16}/,
    hint: HASH_HINT,
  },
  {
    label: 'file bytes differ from the manifest',
    touches: ['input/from-b.csv'],
    edit: (s) => writeFileSync(path.join(s.live, 'input/from-b.csv'), 'id\n43\n'),
    code: 'HASH_MISMATCH',
    message: /hash mismatch for input\/from-b\.csv/,
    hint: HASH_HINT,
  },
  { label: 'link escaping the project', edit: link('input/l', '../../etc/passwd'), ...UNSEALED },
  { label: 'absolute link', edit: link('input/l', '/etc/passwd'), ...UNSEALED },
  {
    label: 'repository file replaced by a symlink out of the repository (hash forged to match)',
    touches: ['input/from-b.csv'],
    edit: (s) => {
      const target = '/etc/hostname';
      const bytes = readFileSync(target);
      const f = path.join(s.live, 'input/from-b.csv');
      unlinkSync(f);
      symlinkSync(target, f);
      const m = readManifest(s);
      Object.assign(m.entries['input/from-b.csv']!, { hash: fileHash(bytes), filesize: bytes.length });
      writeManifest(s, reseal(m));
    },
    code: /^(VALIDATION|NOT_FOUND)$/,
    message: /"input\/from-b\.csv" is a symlink, not a file|input\/from-b\.csv is missing from the repository/,
    hint: /./,
  },
  {
    label: 'repository file replaced by a FIFO (must not hang)',
    touches: ['input/from-b.csv'],
    edit: (s) => {
      const f = path.join(s.live, 'input/from-b.csv');
      unlinkSync(f);
      execFileSync('mkfifo', [f]);
    },
    code: /^(VALIDATION|NOT_FOUND)$/,
    message: /"input\/from-b\.csv" is a special file, not a file|input\/from-b\.csv is missing from the repository/,
    hint: /./,
  },
];

/**
 * The same forgeries in a manifest that is sound otherwise (resealed: what a
 * modified client committing a snapshot, or another tool, could write). Read
 * leniently: the entry is held back, reported by status and clone, and
 * written nowhere; the rest of the repository works (status still plans the
 * download and the upload). `outside`: absolute paths that must not appear.
 */
interface HeldCase {
  label: string;
  path: string;
  edit(s: Scene): void;
  reason: RegExp;
  /** only a clone (the name catalogue: the same gate as status) */
  cloneOnly?: boolean;
  outside?: (s: Scene) => string[];
}

const sealed =
  (p: string, e: Record<string, unknown> = {}): ((s: Scene) => void) =>
  (s) =>
    writeManifest(s, reseal(addEntry(readManifest(s), p, e)));
const sealedLink =
  (p: string, reference: string): ((s: Scene) => void) =>
  (s) => {
    const m = readManifest(s);
    m.entries[p] = { type: 'link', path: p, user: 'mallory@example.org', reference };
    writeManifest(s, reseal(m));
  };
const absEvil = (s: Scene): string => path.join(s.sb.dir, 'abs', 'evil.csv');

const HELD_CASES: HeldCase[] = [
  {
    label: '../ path',
    path: '../evil.csv',
    edit: sealed('../evil.csv'),
    reason: /refused name: path starts with \.\/ or \.\.\//,
  },
  {
    label: '.. inside a path',
    path: 'input/../../evil.csv',
    edit: sealed('input/../../evil.csv'),
    reason: /refused name: "\.\." component/,
  },
  {
    label: 'absolute path',
    path: '(absolute)',
    edit: (s) => sealed(absEvil(s))(s),
    reason: /refused name: absolute path/,
    outside: (s) => [absEvil(s)],
  },
  {
    label: 'NUL in a path',
    path: 'input/a\0b.csv',
    edit: sealed('input/a\0b.csv'),
    reason: /refused name: illegal character U\+0000/,
  },
  {
    label: 'hash that is not a hash',
    path: 'input/h.csv',
    edit: sealed('input/h.csv', { hash: '../../etc/passwd' }),
    reason: /hash "\.\.\/\.\.\/etc\/passwd" is not 16 lowercase hex digits/,
  },
  {
    label: 'mtime without an offset',
    path: 'input/m.csv',
    edit: sealed('input/m.csv', { mtime: '2024-01-15T09:00:00' }),
    reason: /mtime "2024-01-15T09:00:00" is not an ISO 8601 timestamp/,
  },
  {
    label: 'link escaping the project',
    path: 'input/l',
    edit: sealedLink('input/l', '../../etc/passwd'),
    reason: /symlink target escapes the project/,
  },
  {
    label: 'absolute link',
    path: 'input/l',
    edit: sealedLink('input/l', '/etc/passwd'),
    reason: /absolute symlink target/,
  },
  // the name rules, one each (posix: one backend is enough for the catalogue)
  ...(
    [
      ['input/a|b.csv', /illegal character "\|"/],
      ['input/a\\b.csv', /contains a backslash/],
      ['input/a\u0001b.csv', /illegal character U\+0001/],
      ['input/evil\u202Ecsv.exe', /illegal character U\+202E/],
      ['input/AUX.csv', /Windows reserved name "aux"/],
      ['input/backup~', /temporary or backup name/],
      ['input/ lead.csv', /leading or trailing whitespace/],
      ['input/cafe\u0301.csv', /not in Unicode NFC/],
    ] as const
  ).map(([p, why]) => ({
    label: `refused name ${JSON.stringify(p)}`,
    path: p,
    edit: sealed(p),
    reason: why,
    cloneOnly: true,
  })),
];

/** The data files of a working copy (no .dsg/, no project config, no directories). */
const dataFiles = (dir: string): string[] =>
  Object.entries(listing(dir))
    .filter(([p, v]) => v !== 'dir' && !p.startsWith('.dsg') && p !== '.dsgconfig.yml')
    .map(([p]) => p)
    .sort();

async function runHeldCase(s: Scene, c: HeldCase): Promise<void> {
  const restore = saveLive(s, [LAST_SYNC]);
  try {
    c.edit(s);
    const held = (doc: { heldBack?: { path: string; reason: string }[] }, what: string): void => {
      expect(doc.heldBack, `${c.label}: ${what}`).toHaveLength(1);
      const h = doc.heldBack![0]!;
      if (c.path === '(absolute)') expect(h.path).toBe(absEvil(s));
      else expect(h.path).toBe(c.path);
      expect(h.reason, `${c.label}: ${what}`).toMatch(c.reason);
    };
    const beforeA = clientState(s.A);
    const beforeRepo = repoState(s);
    if (!c.cloneOnly) {
      const st = await dsgAsync(s.A, s.sb.env, ['--json', 'status'], 180_000);
      ok(st, `${c.label}: status`);
      const doc = JSON.parse(st.stdout) as {
        heldBack: { path: string; reason: string }[];
        upload: string[];
        download: string[];
        invalidNames: unknown[];
      };
      held(doc, 'status');
      // everything else works: A is one snapshot behind with one local change
      const data = (l: string[]): string[] => l.filter((p) => p !== '.dsgconfig.yml'); // the config travels beside the manifest
      expect({ upload: data(doc.upload), download: data(doc.download), invalid: doc.invalidNames }).toEqual({
        upload: ['input/new-in-a.csv'],
        download: ['input/from-b.csv'],
        invalid: [],
      });
      expect(clientState(s.A), `${c.label}: working copy`).toEqual(beforeA);
    }
    const dest = path.join(s.sb.dir, `clone-${++cloneNo}`, 'deep');
    const clone = await dsgAsync(s.sb.dir, s.sb.env, ['--json', 'clone', ...s.b.cloneArgs(s.name), dest], 180_000);
    ok(clone, `${c.label}: clone`);
    held(JSON.parse(clone.stdout) as { heldBack?: { path: string; reason: string }[] }, 'clone');
    expect(dataFiles(dest), `${c.label}: what the clone wrote`).toEqual([
      'input/from-b.csv',
      'input/x.csv',
      'output/y.txt',
    ]);
    expect(readdirSync(path.dirname(dest)), `${c.label}: beside the clone`).toEqual(['deep']);
    for (const p of c.outside?.(s) ?? []) expect(existsSync(p), p).toBe(false);
    expect(repoState(s), `${c.label}: repository`).toEqual(beforeRepo);
    rmSync(path.dirname(dest), { recursive: true, force: true });
  } finally {
    restore();
  }
}

/** The repository's .dsgconfig.yml replaced by one with wrong types, the manifest resealed to match. */
const SERVER_CONFIG_CASE: ServerCase = {
  label: 'repository .dsgconfig.yml with wrong types (resealed)',
  touches: ['.dsgconfig.yml'],
  edit: (s) => {
    const bad = 'name: [not, a, name]\nrepository:\n  type: posix\n  root: 7\ndata_dirs: input\n';
    writeFileSync(path.join(s.live, '.dsgconfig.yml'), bad);
    // where the config is still a manifest entry (older dsg), the entry is resealed to match;
    // where it travels beside the manifest, the repository's copy is all there is to edit
    const m = readManifest(s);
    const e = m.entries['.dsgconfig.yml'];
    if (e) {
      Object.assign(e, { hash: fileHash(bad), filesize: Buffer.byteLength(bad) });
      writeManifest(s, reseal(m));
    }
  },
  exit: 2,
  code: 'CONFIG',
  message: /^the repository's \.dsgconfig\.yml is invalid: repository:\.dsgconfig\.yml:1: name: expected a string/,
  hint: /^Nothing was changed\. Put a valid \.dsgconfig\.yml back into the repository/,
};

async function afterwardsSyncWorks(s: Scene): Promise<void> {
  // the scene itself was sound: with the repository restored the same sync goes through
  ok(await dsgAsync(s.A, s.sb.env, ['sync', '-m', 'honest', '-q']), 'honest sync');
  expect(readFileSync(path.join(s.A, 'input', 'from-b.csv'), 'utf8')).toBe('id\n42\n');
  expect(s.b.snapshots(s.name)).toEqual(['s1', 's2', 's3']);
  expect(s.b.leftovers(s.name)).toEqual([]);
  ok(await dsgAsync(s.A, s.sb.env, ['validate-chain']), 'validate-chain');
}

async function workingCopyNames(s: Scene): Promise<void> {
  const hostile: string[] = [];
  const file = (rel: string): void => {
    write(path.join(s.A, rel), 'x\n');
    hostile.push(rel);
  };
  for (const ch of ['<', '>', '"', '|', '?', '*', '\\']) file(`input/a${ch}b.csv`);
  for (let cp = 0x01; cp <= 0x1f; cp++) file(`input/c${String.fromCodePoint(cp)}.csv`);
  const points = [
    0x2028, 0x2029, 0x202a, 0x202b, 0x202c, 0x202d, 0x202e, 0x200b, 0x200c, 0x200d, 0x2060, 0x2066, 0x2067, 0x2068,
    0x2069, 0xfff9, 0xfffa, 0xfffb, 0xfffc, 0x1d159, 0x1d173, 0x1d17a, 0x0378,
  ];
  for (const cp of points) file(`input/u${String.fromCodePoint(cp)}.csv`);
  for (const n of ['con', 'PRN.csv', 'aux.txt', 'nul', 'com1.csv', 'COM9', 'lpt1.txt', 'LPT9']) file(`input/${n}`);
  for (const n of ['~lock.csv', 'draft.csv~', ' lead.csv', 'trail.csv ', 'cafe\u0301.csv']) file(`input/${n}`);
  write(path.join(s.A, 'input', 'caf\u00e9.csv'), 'the NFC twin is fine\n');
  write(path.join(s.A, 'output', 'deep', 'na\u0308me', 'x.csv'), 'x\n');
  hostile.push('output/deep/na\u0308me'); // an NFD directory name: refused as a whole
  const sym = (rel: string, target: string): void => {
    mkdirSync(path.dirname(path.join(s.A, rel)), { recursive: true });
    symlinkSync(target, path.join(s.A, rel));
    hostile.push(rel);
  };
  sym('input/up', '../../etc/passwd');
  sym('input/abs', '/etc/passwd');
  sym('output/sub/one-too-far', '../../../x'); // the ancestor's off-by-one
  mkdirSync(path.join(s.sb.dir, 'outside'), { recursive: true });
  writeFileSync(path.join(s.sb.dir, 'outside', 'secret.csv'), 'secret\n');
  sym('frozen', '../outside'); // a data directory that is a link out of the project
  execFileSync('mkfifo', [path.join(s.A, 'input', 'pipe')]);
  hostile.push('input/pipe');

  // old enough for the stat cache to keep (a file younger than a few seconds is re-hashed on every scan)
  const past = new Date(Date.now() - 3600_000);
  for (const f of [
    ...hostile.filter((h) => !h.startsWith('output/deep')),
    'input/caf\u00e9.csv',
    'output/deep/na\u0308me/x.csv',
  ]) {
    try {
      lutimesSync(path.join(s.A, f), past, past);
    } catch {
      // FIFOs and links are not hashed
    }
  }
  try {
    await expectRefusedNames(s, hostile);
  } finally {
    for (const h of hostile) rmSync(path.join(s.A, h), { recursive: true, force: true });
    rmSync(path.join(s.A, 'output', 'deep'), { recursive: true, force: true });
    rmSync(path.join(s.A, 'output', 'sub'), { recursive: true, force: true });
    rmSync(path.join(s.A, 'input', 'caf\u00e9.csv'));
  }
}

async function expectRefusedNames(s: Scene, hostile: string[]): Promise<void> {
  const st = await dsgAsync(s.A, s.sb.env, ['--json', 'status']);
  ok(st, 'status');
  const invalid = (JSON.parse(st.stdout) as { invalidNames: { path: string; reason: string }[] }).invalidNames;
  expect(invalid.map((i) => i.path).sort()).toEqual([...hostile].sort());
  for (const i of invalid)
    expect(i.reason, i.path).toMatch(
      /illegal character|reserved|temporary or backup|whitespace|NFC|backslash|symlink target|absolute|not a regular file|a data directory that is a symlink/,
    );
  // status refreshed the stat cache (the NFC twin is new); from here on nothing may change
  const beforeA = clientState(s.A);
  const beforeRepo = repoState(s);
  const r = await dsgAsync(s.A, s.sb.env, ['--json', 'sync']);
  refusedAs(r, 'sync with hostile names', {
    code: 'INVALID_NAMES',
    message: new RegExp(`^${hostile.length} path\\(s\\) cannot be synced`),
    hint: /Rename or remove the listed paths/,
  });
  expect(clientState(s.A)).toEqual(beforeA);
  expect(repoState(s)).toEqual(beforeRepo);
  expect(existsSync(path.join(s.sb.dir, 'outside', 'secret.csv'))).toBe(true);
}

async function workingCopyConfig(s: Scene): Promise<void> {
  const good = readFileSync(path.join(s.A, '.dsgconfig.yml'), 'utf8');
  const variants: [string, (y: string) => string, RegExp][] = [
    ['name: 5', (y) => y.replace(/^name: .*$/m, 'name: 5'), /\.dsgconfig\.yml:1: name: expected a string/],
    [
      'name with a slash',
      (y) => y.replace(/^name: .*$/m, 'name: ../../etc'),
      /\.dsgconfig\.yml:1: name: the repository name may hold only letters/,
    ],
    [
      'data_dirs a string',
      (y) => y.replace(/^data_dirs:\n(?: {2}- .*\n)+/m, 'data_dirs: input\n'),
      /\.dsgconfig\.yml:\d+: data_dirs: expected a list of directory names/,
    ],
    [
      'data_dirs escaping',
      (y) => y.replace(/^data_dirs:\n(?: {2}- .*\n)+/m, 'data_dirs: [input, ../../etc]\n'),
      /\.dsgconfig\.yml:\d+: data_dirs(\.1|\[1\]): expected a relative directory inside the project/,
    ],
    [
      'repository.root a number',
      (y) => y.replace(/^ {2}root: .*$/m, '  root: 7'),
      /\.dsgconfig\.yml:\d+: repository\.root: expected an absolute path/,
    ],
    [
      'repository.type unknown',
      (y) => y.replace(/^ {2}type: .*$/m, '  type: ftp'),
      /\.dsgconfig\.yml:\d+: repository(\.type)?: expected type: zfs or posix/,
    ],
    [
      'repository.port a string',
      (y) => y.replace(/^ {2}type: posix$/m, '  type: posix\n  port: "22x"'),
      /\.dsgconfig\.yml:\d+: repository\.port: expected a port number/,
    ],
    [
      'ignore.names a number',
      (y) => y.replace(/^ignore:\n {2}names:\n(?: {4}- .*\n)+/m, 'ignore:\n  names: 3\n'),
      /\.dsgconfig\.yml:\d+: ignore\.names: expected a list of file names/,
    ],
  ];
  const beforeRepo = repoState(s);
  await pool(
    2,
    variants.map(([label, edit, want], i) => async () => {
      const dir = path.join(s.sb.dir, `cfg-${i}`);
      cpSync(s.A, dir, { recursive: true, verbatimSymlinks: true });
      const bad = edit(good);
      expect(bad, label).not.toBe(good);
      writeFileSync(path.join(dir, '.dsgconfig.yml'), bad);
      const before = clientState(dir);
      const r = await dsgAsync(dir, s.sb.env, ['--json', 'sync']);
      refusedAs(r, `config ${label}`, { exit: 2, code: 'CONFIG', message: want, hint: /\.dsgconfig\.yml/ });
      expect(clientState(dir), label).toEqual(before);
    }),
  );
  expect(repoState(s)).toEqual(beforeRepo);
}

interface Step {
  label: string;
  run: () => void | Promise<void>;
}

const posix: { s?: Scene } = {};
const onZfs: { s?: Scene } = {};
const scene = (h: { s?: Scene }): Scene => {
  if (!h.s) throw new Error('the setup step failed');
  return h.s;
};

/** Server-side cases that only exercise the client's reading of the manifest: on ZFS a clone is enough (the same check as sync). */
const PARSE_ONLY = new Set([
  '.. inside a path',
  'absolute path',
  'NUL in a path',
  '10 MB path',
  'hash that is not a hash',
  'entry of the wrong shape (filesize a string), manifest resealed',
  'absolute link',
]);
/** The held-back cases run on ZFS too (the gate is the client's, whatever the backend). */
const HELD_ON_ZFS = new Set(['../ path', 'link escaping the project']);

const POSIX_STEPS: Step[] = [
  {
    label: 'setup: repository at s2, working copy A at s1 with a local change',
    run: async () => {
      const b = posixLocalBackend('posix/local');
      backends.push(b);
      posix.s = await makeScene(b, 'hostile');
      scenes.push(posix.s);
    },
  },
  ...[...SERVER_CASES, SERVER_CONFIG_CASE].map((c) => ({
    label: `server: ${c.label} → refused, nothing written anywhere`,
    run: () => runServerCase(scene(posix), c),
  })),
  ...HELD_CASES.map((c) => ({
    label: `server, resealed: ${c.label} → held back, written nowhere, the rest works`,
    run: () => runHeldCase(scene(posix), c),
  })),
  {
    label:
      'working copy: every refused name, escaping symlinks, NFD twin, FIFO, symlinked data dir → sync refused, nothing written',
    run: () => workingCopyNames(scene(posix)),
  },
  {
    label: 'working copy: .dsgconfig.yml with wrong types → exit 2 naming file:line: key, nothing written',
    run: () => workingCopyConfig(scene(posix)),
  },
  {
    label: 'afterwards: the repository restored, the same sync goes through and the chain validates',
    run: () => afterwardsSyncWorks(scene(posix)),
  },
];

const ZFS_STEPS: Step[] = [
  {
    label: 'setup: repository at s2, working copy A at s1 with a local change',
    run: async () => {
      const b = zfsSshBackend(zfs!, ssh!, { label: 'zfs/ssh' });
      backends.push(b);
      onZfs.s = await makeScene(b, 'hostile');
      scenes.push(onZfs.s);
    },
  },
  ...SERVER_CASES.map((c) => ({
    label: `server: ${c.label} → refused, nothing written anywhere`,
    run: () => runServerCase(scene(onZfs), PARSE_ONLY.has(c.label) ? { ...c, cloneOnly: true } : c),
  })),
  ...HELD_CASES.filter((c) => HELD_ON_ZFS.has(c.label)).map((c) => ({
    label: `server, resealed: ${c.label} → held back, written nowhere, the rest works`,
    run: () => runHeldCase(scene(onZfs), c),
  })),
  {
    label: 'afterwards: the repository restored, the same sync goes through and the chain validates',
    run: () => afterwardsSyncWorks(scene(onZfs)),
  },
];

// The two backends run side by side (each one's steps strictly in order): half the wall time.
describe.concurrent('hostile input through the built binary', () => {
  for (let i = 0; i < Math.max(POSIX_STEPS.length, ZFS_STEPS.length); i++) {
    const p = POSIX_STEPS[i];
    if (p) it(`posix/local: ${p.label}`, () => serial('posix', p.run));
    const z = ZFS_STEPS[i];
    if (z) it.skipIf(!zfs || !ssh)(`zfs/ssh: ${z.label}`, () => serial('zfs', z.run));
  }
});
