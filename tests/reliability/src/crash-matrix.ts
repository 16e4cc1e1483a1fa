/**
 * The crash matrix (issue 10 item 1): for every fault point of init and
 * sync, kill -9 the process that reaches it (DSG_FAULT, see
 * @dsg/contracts fault.ts), then check that the repository is at exactly
 * the old or the new snapshot, `dsg validate-chain` passes, the working
 * tree has every byte it had (or the synced result), and a plain `dsg sync`
 * completes and leaves no leftovers.
 *
 * Client points are set in the dsg process's environment. Agent points
 * reach the agent through a per-case wrapper script named as the agent
 * command (sshd passes no environment): it reads the case's `agent-fault`
 * file and records the agent's exit status, which proves the agent really
 * died at the point (137 = SIGKILL). With the in-process local transport
 * (posix/local) agent and client are one process: every point kills dsg.
 */
import { chmodSync, existsSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  AGENT,
  diffListings,
  dsgAsync,
  listing,
  noMeta,
  sandbox,
  write,
  type Backend,
  type RunResult,
  type Sandbox,
} from './harness.js';

export type Phase = 'init' | 'sync';
export type Side = 'client' | 'agent';

export interface FaultPoint {
  /** the point where the process is killed */
  point: string;
  side: Side;
  /** a `<point>:throw` reached first, to get into a rollback (DSG_FAULT=`<via>,<point>`) */
  via?: string;
}

const spec = (fp: FaultPoint): string => (fp.via ? `${fp.via},${fp.point}` : fp.point);
/** the point as the table shows it */
export const pointLabel = (fp: FaultPoint): string => (fp.via ? `${fp.point} (after ${fp.via})` : fp.point);

const client = (...ps: string[]): FaultPoint[] => ps.map((point) => ({ point, side: 'client' as const }));
const agent = (...ps: string[]): FaultPoint[] => ps.map((point) => ({ point, side: 'agent' as const }));

/** Client points: scan, a copy on the server (content the repository has), a pack of small files half sent, each upload, staging, before/after the remote commit, during the client apply. */
export const CLIENT_POINTS: FaultPoint[] = client(
  'sync.after-scan',
  'sync.after-copy',
  'sync.mid-pack',
  'sync.after-upload',
  'sync.after-staging',
  'sync.before-commit',
  'tx.after-remote-commit',
  'client.commit.after-journal',
  'client.commit.after-first-op',
  'client.commit.before-cleanup',
  'client.commit.before-journal-drop',
);

/**
 * The client points also run against ZFS over ssh, where the agent outlives
 * the killed client: the lock held by a live agent, the agent rolling back
 * an abandoned transaction, the journal against a remote commit. The rest
 * of the client code is the same as on posix; `DSG_CRASH_FULL=1` runs every
 * client point on ZFS too (the default keeps the matrix within its time budget).
 */
export const ZFS_CLIENT_POINTS: Record<Phase, FaultPoint[]> =
  process.env['DSG_CRASH_FULL'] === '1'
    ? { init: CLIENT_POINTS, sync: CLIENT_POINTS }
    : {
        init: client('sync.before-commit', 'tx.after-remote-commit'),
        sync: client(
          'sync.after-scan',
          'sync.after-copy',
          'sync.mid-pack',
          'sync.after-upload',
          'sync.before-commit',
          'tx.after-remote-commit',
          'client.commit.after-first-op',
        ),
      };

/** Agent points per backend and phase: each step of begin and commit, each put. */
export const AGENT_POINTS: Record<'posix' | 'zfs', Record<Phase, FaultPoint[]>> = {
  posix: {
    init: agent(
      'posix.begin.start',
      'posix.begin.after-mkdir',
      'posix.put.after-write',
      'posix.commit.start',
      'posix.commit.after-seal',
      'posix.commit.after-metadata',
      'posix.commit.after-rename',
      'posix.commit.after-temp-link',
      'posix.commit.after-switch',
    ),
    sync: agent(
      'posix.begin.start',
      'posix.begin.after-mkdir',
      'posix.begin.after-clone',
      'posix.put.after-write',
      'posix.commit.start',
      'posix.commit.after-seal',
      'posix.commit.after-metadata',
      'posix.commit.after-rename',
      'posix.commit.after-temp-link',
      'posix.commit.after-switch',
    ),
  },
  zfs: {
    init: agent(
      'zfs.begin.after-create',
      'zfs.put.after-write',
      'zfs.init.before-unmount',
      'zfs.init.after-unmount',
      'zfs.init.after-rename',
      'zfs.init.after-mount',
      'zfs.init.after-snapshot',
    ),
    sync: [
      ...agent(
        'zfs.begin.after-temp-snapshot',
        'zfs.begin.after-clone',
        'zfs.put.after-write',
        'zfs.sync.before-unmount',
        'zfs.sync.after-unmount',
        'zfs.sync.after-promote',
        'zfs.sync.after-rename-old',
        'zfs.sync.after-rename-new',
        'zfs.sync.after-mount',
        'zfs.sync.after-snapshot',
        'zfs.sync.after-destroy-old',
        'zfs.sync.after-destroy-temp',
      ),
      // a crash while rolling back a failed commit, before and after the promote
      { point: 'zfs.rollback.marked', side: 'agent', via: 'zfs.sync.after-unmount:throw' },
      { point: 'zfs.rollback.after-promote', side: 'agent', via: 'zfs.sync.after-promote:throw' },
    ],
  },
};

export interface CaseResult {
  backend: string;
  phase: Phase;
  point: string;
  side: Side;
  /** how the faulted command ended: `SIGKILL` (dsg died), `agent SIGKILL, dsg exit 1`, … */
  died: string;
  /** the repository after recovery: at the old or the new snapshot */
  outcome: 'old' | 'new' | '?';
  recovered: boolean;
  /** what failed, if anything */
  error?: string;
  ms: number;
}

/** A failed check inside a case; the message says which. */
class CheckFailed extends Error {}

function check(cond: unknown, what: string): asserts cond {
  if (!cond) throw new CheckFailed(what);
}

function sameTree(want: Record<string, string>, got: Record<string, string>, what: string): void {
  const d = diffListings(want, got);
  check(d === '', `${what}:\n${d}`);
}

const out = (r: RunResult): string =>
  `exit ${r.code}${r.signal ? ` signal ${r.signal}` : ''}\n--- stdout\n${r.stdout.slice(-2000)}\n--- stderr\n${r.stderr.slice(-2000)}`;

async function ok(what: string, p: Promise<RunResult>): Promise<RunResult> {
  const r = await p;
  check(r.code === 0, `${what} failed: ${out(r)}`);
  return r;
}

/** Working-tree data (no `.dsg/`, no conflicts.txt). */
const data = (dir: string): Record<string, string> => listing(dir, noMeta);
/** The repository's live tree without its `.dsg/` metadata. */
const repoData = (b: Backend, name: string): Record<string, string> => {
  const t = b.liveTree(name);
  return t ? listing(t, noMeta) : {};
};

/** A project directory plus the agent wrapper its repository config names. */
interface Project {
  sb: Sandbox;
  caseDir: string;
  wrapper: string;
  name: string;
}

function newProject(b: Backend, label: string): Project {
  const sb = sandbox(b.userYaml);
  const caseDir = path.join(sb.dir, 'case');
  const wrapper = path.join(caseDir, 'agent.sh');
  write(
    wrapper,
    [
      '#!/bin/sh',
      '# crash-matrix agent wrapper: a fault for the agent, and its exit status',
      `d=${JSON.stringify(caseDir)}`,
      'if [ -s "$d/agent-fault" ]; then',
      '  DSG_FAULT=$(cat "$d/agent-fault"); export DSG_FAULT',
      `  ${JSON.stringify(process.execPath)} ${JSON.stringify(AGENT)} "$@"`,
      '  rc=$?',
      '  echo "$rc" >> "$d/agent-exit"',
      '  exit $rc',
      'fi',
      `exec ${JSON.stringify(process.execPath)} ${JSON.stringify(AGENT)} "$@"`,
      '',
    ].join('\n'),
  );
  chmodSync(wrapper, 0o755);
  const name = `${label}-${path.basename(sb.dir).replace(/[^A-Za-z0-9]/g, '')}`.slice(0, 60);
  return { sb, caseDir, wrapper, name };
}

/** No journal and no staging left in the working copy; C equals R byte for byte. */
function clientClean(b: Backend, p: Project, dir: string): void {
  for (const sub of ['journal', 'staging']) {
    const d = path.join(dir, '.dsg', sub);
    const left = existsSync(d) ? readdirSync(d) : [];
    check(left.length === 0, `client .dsg/${sub} not empty after the recovery sync: ${left.join(', ')}`);
  }
  const live = b.liveTree(p.name);
  check(live, 'repository has no live tree after the recovery sync');
  const c = readFileSync(path.join(dir, '.dsg', 'last-sync.json'));
  const r = readFileSync(path.join(live, '.dsg', 'last-sync.json'));
  check(c.equals(r), "client's .dsg/last-sync.json differs from the repository's after the recovery sync");
}

/**
 * Run the faulted command; check the right process died at the point.
 * Returns the description for the table.
 */
async function faulted(b: Backend, p: Project, fp: FaultPoint, cwd: string, args: string[]): Promise<string> {
  const inProcess = b.type === 'posix'; // posix/local: the agent runs inside dsg
  const agentFault = fp.side === 'agent' && !inProcess;
  const exitFile = path.join(p.caseDir, 'agent-exit');
  rmSync(exitFile, { force: true });
  if (agentFault) writeFileSync(path.join(p.caseDir, 'agent-fault'), spec(fp));
  let r: RunResult;
  try {
    r = await dsgAsync(cwd, agentFault ? p.sb.env : { ...p.sb.env, DSG_FAULT: spec(fp) }, args);
  } finally {
    rmSync(path.join(p.caseDir, 'agent-fault'), { force: true });
  }
  if (!agentFault) {
    // nothing but the fault point sends SIGKILL: the point was reached
    check(r.signal === 'SIGKILL', `point never reached: dsg was not killed (${out(r)})`);
    return 'dsg SIGKILL';
  }
  const exits = existsSync(exitFile) ? readFileSync(exitFile, 'utf8').trim().split('\n') : [];
  check(
    exits.includes('137'),
    `point never reached: no agent died by SIGKILL (agent exits: ${exits.join(',') || 'none'}; dsg ${out(r)})`,
  );
  // the client survives the agent's death and reports one clean error
  check(r.signal === null && r.code === 1, `dsg did not report the dead agent as an error (exit 1): ${out(r)}`);
  const doc = JSON.parse(r.stdout) as { error?: { code?: string; message?: string } };
  check(doc.error?.code && doc.error.message, `no JSON error document: ${out(r)}`);
  check(/hint:/.test(r.stderr), `error without a recovery hint: ${out(r)}`);
  return `agent SIGKILL; dsg exit 1 (${doc.error.code})`;
}

/** The initial tree: each working copy's own file, two files the first rounds delete, and one content twice. */
const USER_FILES = (): Record<string, string> => ({
  'input/own-a.txt': 'a0\n',
  'input/own-b.txt': 'b0\n',
  'input/f-1.txt': 'f-1 (deleted in round 1)\n',
  'input/f0.txt': 'f0 (deleted in round 2)\n',
  'output/r.txt': 'result\n',
  // the same content twice: init sends it once and copies it on the server (sync.after-copy)
  'output/r-twin.txt': 'result\n',
});

/** One init-phase case: `dsg init` crashes at fp. */
export async function initCase(b: Backend, fp: FaultPoint): Promise<CaseResult> {
  const t0 = Date.now();
  const res: CaseResult = {
    backend: b.label,
    phase: 'init',
    point: pointLabel(fp),
    side: fp.side,
    died: '',
    outcome: '?',
    recovered: false,
    ms: 0,
  };
  const p = newProject(b, 'ci');
  const A = path.join(p.sb.dir, 'a');
  try {
    for (const [rel, content] of Object.entries(USER_FILES())) write(path.join(A, rel), content);
    const before = data(A);
    res.died = await faulted(b, p, fp, A, [
      '--json',
      'init',
      ...b.initArgs(p.name, { agent: [p.wrapper] }),
      '--repo-name',
      p.name,
      '-m',
      'init',
    ]);
    check(existsSync(path.join(A, '.dsgconfig.yml')), 'init wrote no .dsgconfig.yml before its transaction');
    const withConfig = { ...before, '.dsgconfig.yml': readFileSync(path.join(A, '.dsgconfig.yml')).toString('base64') };

    // the first command after the crash recovers both sides
    const vc = await dsgAsync(A, p.sb.env, ['--json', 'validate-chain']);
    const snaps = b.snapshots(p.name);
    if (vc.code === 0) {
      const doc = JSON.parse(vc.stdout) as { ok: boolean; snapshots: number };
      check(doc.ok && doc.snapshots === 1, `validate-chain after the crash: ${vc.stdout}`);
      check(snaps.join() === 's1', `validate-chain passed but the repository has snapshots [${snaps.join()}]`);
      res.outcome = 'new';
      sameTree(withConfig, repoData(b, p.name), 'repository is not exactly the new snapshot s1');
    } else {
      res.outcome = 'old';
      check(
        snaps.length === 0 && b.liveTree(p.name) === null,
        `validate-chain failed but the repository exists (${snaps.join()}): ${out(vc)}`,
      );
      const err = (JSON.parse(vc.stdout) as { error?: { code?: string } }).error;
      check(err?.code === 'NOT_FOUND', `validate-chain failed for another reason than "no repository": ${out(vc)}`);
    }
    const left = b.leftovers(p.name);
    check(left.length === 0, `repository leftovers after recovery: ${left.join(', ')}`);
    sameTree(withConfig, data(A), 'working tree lost bytes');

    await ok('recovery `dsg sync`', dsgAsync(A, p.sb.env, ['--json', 'sync', '-m', 'after crash']));
    check(
      b.snapshots(p.name).join() === 's1',
      `after the recovery sync the repository has [${b.snapshots(p.name).join()}], not [s1]`,
    );
    sameTree(withConfig, repoData(b, p.name), 'repository after the recovery sync');
    sameTree(withConfig, data(A), 'working tree after the recovery sync');
    check(b.leftovers(p.name).length === 0, `leftovers after the recovery sync: ${b.leftovers(p.name).join(', ')}`);
    clientClean(b, p, A);
    if (res.outcome === 'old') {
      const vc2 = await ok(
        'validate-chain after the recovery sync',
        dsgAsync(A, p.sb.env, ['--json', 'validate-chain']),
      );
      check((JSON.parse(vc2.stdout) as { ok: boolean }).ok, `validate-chain: ${vc2.stdout}`);
    }
    res.recovered = true;
  } catch (e) {
    res.error = e instanceof Error ? e.message : String(e);
  } finally {
    res.ms = Date.now() - t0;
    p.sb.remove();
  }
  return res;
}

/**
 * A chain of sync-phase cases on one repository, two working copies taking
 * turns. Round r's writer X (B on odd rounds, A on even) changes its own
 * file, adds f<r>, adds a copy of output/r.txt (a copy on the server, not an
 * upload) and deletes f<r-2>, and syncs: it downloads what the
 * other copy did in round r-1 (a changed file, a new file, a delete) and
 * uploads its own, all in one transaction. Round 1 is a plain sync of B;
 * every later round syncs with the fault. After a failed check the rest of
 * the chain is not run.
 */
export async function syncChain(b: Backend, points: FaultPoint[]): Promise<CaseResult[]> {
  const results: CaseResult[] = [];
  const p = newProject(b, 'cs');
  const W = [path.join(p.sb.dir, 'a'), path.join(p.sb.dir, 'b')];
  const w = (x: number): string => W[x]!;
  const own = (x: number): string => `input/own-${x === 0 ? 'a' : 'b'}.txt`;
  const change = (x: number, r: number): void => {
    const X = w(x);
    write(path.join(X, own(x)), `round ${r} by ${x === 0 ? 'A' : 'B'}\n`);
    unlinkSync(path.join(X, `input/f${r - 2}.txt`));
    write(path.join(X, `input/f${r}.txt`), `f${r} (added in round ${r})\n`);
    // content the repository already has (output/r.txt): copied on the server, not sent
    write(path.join(X, `output/copy-${r}.txt`), 'result\n');
  };
  let aborted: string | null = null;
  try {
    for (const [rel, content] of Object.entries(USER_FILES())) write(path.join(w(0), rel), content);
    await ok(
      'setup: dsg init',
      dsgAsync(w(0), p.sb.env, [
        '--json',
        'init',
        ...b.initArgs(p.name, { agent: [p.wrapper] }),
        '--repo-name',
        p.name,
        '-m',
        'init',
      ]),
    );
    // the clone's own connection names the wrapper too: connection settings never come from the repository
    await ok(
      'setup: dsg clone',
      dsgAsync(p.sb.dir, p.sb.env, ['--json', 'clone', ...b.cloneArgs(p.name, { agent: [p.wrapper] }), 'b']),
    );
    change(1, 1);
    await ok('setup: round 1 (B)', dsgAsync(w(1), p.sb.env, ['--json', 'sync', '-m', 'round 1']));
  } catch (e) {
    aborted = `chain setup failed: ${e instanceof Error ? e.message : String(e)}`;
  }
  let r = 1;
  for (const fp of points) {
    r++;
    const t0 = Date.now();
    const res: CaseResult = {
      backend: b.label,
      phase: 'sync',
      point: pointLabel(fp),
      side: fp.side,
      died: '',
      outcome: '?',
      recovered: false,
      ms: 0,
    };
    results.push(res);
    if (aborted) {
      res.error = `not run: ${aborted}`;
      continue;
    }
    try {
      const x = r % 2 === 0 ? 0 : 1;
      const X = w(x);
      const oldSnaps = b.snapshots(p.name);
      const oldRepo = repoData(b, p.name);
      change(x, r);
      const before = data(X);
      const expectNew: Record<string, string> = { ...oldRepo };
      delete expectNew[`input/f${r - 2}.txt`];
      for (const rel of [own(x), `input/f${r}.txt`, `output/copy-${r}.txt`]) expectNew[rel] = before[rel]!;
      const newSnaps = [...oldSnaps, `s${oldSnaps.length + 1}`];
      // the plan must really have every kind of step
      check(
        Object.keys(oldRepo).some((k) => !(k in before)) && Object.keys(before).some((k) => !(k in oldRepo)),
        `round ${r}: nothing to download or delete`,
      );

      res.died = await faulted(b, p, fp, X, ['--json', 'sync', '-m', `round ${r}: ${fp.point}`]);

      const vc = await ok('validate-chain after the crash', dsgAsync(X, p.sb.env, ['--json', 'validate-chain']));
      const doc = JSON.parse(vc.stdout) as { ok: boolean; snapshots: number };
      check(doc.ok, `validate-chain: ${vc.stdout}`);
      const snaps = b.snapshots(p.name);
      if (snaps.join() === oldSnaps.join()) res.outcome = 'old';
      else if (snaps.join() === newSnaps.join()) res.outcome = 'new';
      check(
        res.outcome !== '?',
        `repository snapshots [${snaps.join()}] are neither the old [${oldSnaps.join()}] nor the new [${newSnaps.join()}]`,
      );
      check(
        doc.snapshots === snaps.length,
        `validate-chain counted ${doc.snapshots} snapshots, the repository has ${snaps.length}`,
      );
      sameTree(
        res.outcome === 'old' ? oldRepo : expectNew,
        repoData(b, p.name),
        `repository is not exactly the ${res.outcome} snapshot`,
      );
      check(b.leftovers(p.name).length === 0, `repository leftovers after recovery: ${b.leftovers(p.name).join(', ')}`);
      const tree = data(X);
      const asBefore = diffListings(before, tree) === '';
      const asNew = diffListings(expectNew, tree) === '';
      check(
        asBefore || (res.outcome === 'new' && asNew),
        `working tree is neither what it had nor the synced result (repository ${res.outcome}):\n${diffListings(before, tree)}`,
      );

      await ok('recovery `dsg sync`', dsgAsync(X, p.sb.env, ['--json', 'sync', '-m', `round ${r} again`]));
      check(
        b.snapshots(p.name).join() === newSnaps.join(),
        `after the recovery sync the repository has [${b.snapshots(p.name).join()}], not [${newSnaps.join()}]`,
      );
      sameTree(expectNew, repoData(b, p.name), 'repository after the recovery sync');
      sameTree(expectNew, data(X), 'working tree after the recovery sync');
      check(b.leftovers(p.name).length === 0, `leftovers after the recovery sync: ${b.leftovers(p.name).join(', ')}`);
      clientClean(b, p, X);
      res.recovered = true;
    } catch (e) {
      res.error = e instanceof Error ? e.message : String(e);
      aborted = `an earlier case (${fp.point}) failed`;
    } finally {
      res.ms = Date.now() - t0;
    }
  }
  if (!aborted) {
    // the other working copy catches up and the whole chain still validates
    const y = r % 2 === 0 ? 1 : 0;
    try {
      await ok('final: catch-up sync', dsgAsync(w(y), p.sb.env, ['--json', 'sync']));
      sameTree(data(w(0)), data(w(1)), 'final: A and B differ');
      const vc = await ok('final: validate-chain', dsgAsync(w(y), p.sb.env, ['--json', 'validate-chain']));
      check(
        (JSON.parse(vc.stdout) as { snapshots: number }).snapshots === points.length + 2,
        `final validate-chain: ${vc.stdout}`,
      );
    } catch (e) {
      const last = results.at(-1);
      if (last) {
        last.recovered = false;
        last.error = `after the chain: ${e instanceof Error ? e.message : String(e)}`;
      }
    }
  }
  p.sb.remove();
  return results;
}

/** The table of cases, as markdown. */
export function table(rows: CaseResult[]): string {
  const lines = [
    '| backend | phase | point | side | died | outcome | recovered | s |',
    '|---|---|---|---|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.backend} | ${r.phase} | ${r.point} | ${r.side} | ${r.died || '-'} | ${r.outcome} | ${r.recovered ? 'yes' : 'NO'} | ${(r.ms / 1000).toFixed(1)} |`,
    ),
  ];
  const by = new Map<string, { tried: number; ok: number }>();
  for (const r of rows) {
    const k = `${r.backend} ${r.phase}`;
    const v = by.get(k) ?? { tried: 0, ok: 0 };
    v.tried++;
    if (r.recovered) v.ok++;
    by.set(k, v);
  }
  lines.push('', '| backend / phase | points tried | recovered |', '|---|---|---|');
  for (const [k, v] of by) lines.push(`| ${k} | ${v.tried} | ${v.ok} |`);
  const tried = rows.length;
  const ok = rows.filter((r) => r.recovered).length;
  lines.push('', `**${ok} / ${tried} recovered**`);
  const failed = rows.filter((r) => !r.recovered);
  if (failed.length) {
    lines.push('', '## Failures', '');
    for (const r of failed) lines.push(`### ${r.backend} ${r.phase} ${r.point}`, '', '```', r.error ?? '', '```', '');
  }
  return lines.join('\n') + '\n';
}

/** Split points into n chains of nearly equal length (round robin). */
export function chains<T>(xs: T[], n: number): T[][] {
  const out: T[][] = Array.from({ length: Math.max(1, Math.min(n, xs.length)) }, () => []);
  xs.forEach((x, i) => out[i % out.length]!.push(x));
  return out;
}
