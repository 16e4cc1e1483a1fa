/**
 * The many-clients scenario behind the concurrency test and the soak: N
 * working directories on one repository; waves of random edits followed by
 * syncs started at the same moment; then a sequential catch-up until every
 * client is clean; then every check (concurrency-model.ts checkRun, the
 * chain, the log, identical trees, no leftovers, no lock).
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { compareSnapshotIds } from '@dsg/contracts';
import { dsg, dsgAsync, json, ok, sandbox, type Backend, type Sandbox } from './harness.js';
import {
  RepoHistory,
  SimClient,
  checkRun,
  dataTree,
  rng,
  syncOnce,
  tally,
  type SyncRecord,
  type Tally,
  type Tree,
} from './concurrency-model.js';

export interface ScenarioOptions {
  backend: Backend;
  clients: number;
  /** stop starting waves once this many sync attempts were made */
  syncs: number;
  seed: number;
  /** how many clients sync at once in a wave: 'all', or a random 1…clients */
  wave: 'all' | 'random';
  log?: (line: string) => void;
}

export interface ScenarioResult {
  name: string;
  records: SyncRecord[];
  tally: Tally;
  waves: number;
  catchUpPasses: number;
  snapshots: number;
  problems: string[];
  ms: number;
}

const SHARED = ['input/shared/a.txt', 'input/shared/b.txt', 'input/shared/c.txt'];

const show = (t: Tree): string =>
  [...t]
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([p, h]) => `${p}=${h}`)
    .join(' ');

export async function runScenario(o: ScenarioOptions): Promise<{ result: ScenarioResult; sandbox: Sandbox }> {
  const t0 = Date.now();
  const log = o.log ?? (() => {});
  const rand = rng(o.seed);
  const sb = sandbox(o.backend.userYaml);
  const name = `conc-${process.pid}-${o.seed % 100000}`;
  const clients: SimClient[] = [];
  for (let i = 0; i < o.clients; i++) {
    const cn = String.fromCharCode(65 + i); // A, B, C, …
    const cfg = path.join(sb.dir, `cfg-${cn}`);
    mkdirSync(cfg);
    writeFileSync(
      path.join(cfg, 'dsg.yml'),
      `user_id: ${cn.toLowerCase()}@example.org\nuser_name: ${cn}\n${o.backend.userYaml}`,
    );
    clients.push(
      new SimClient({ name: cn, dir: path.join(sb.dir, cn), env: { ...sb.env, DSG_CONFIG_HOME: cfg }, shared: SHARED }),
    );
  }
  // A creates the repository with the shared files; the others clone it
  const a = clients[0]!;
  mkdirSync(path.join(a.dir, 'input', 'shared'), { recursive: true });
  for (const s of SHARED) writeFileSync(path.join(a.dir, s), `${s} from the start\n`);
  a.noteOffered();
  ok(dsg(a.dir, a.env, '--json', 'init', ...o.backend.initArgs(name), '--repo-name', name), 'init');
  const clones = await Promise.all(
    clients.slice(1).map((c) => dsgAsync(sb.dir, c.env, ['--json', 'clone', ...o.backend.cloneArgs(name), c.name])),
  );
  for (const [i, r] of clones.entries()) ok(r, `clone ${clients[i + 1]!.name}`);

  const history = new RepoHistory(o.backend, name);
  const records: SyncRecord[] = [];
  let waves = 0;
  while (records.length < o.syncs) {
    waves++;
    const known = history.allHashes();
    for (const c of clients) {
      const backups = c.backups();
      c.edit(waves, rand, (h) => known.has(h) || backups.has(h));
    }
    let who = clients;
    if (o.wave === 'random') {
      const k = 1 + Math.floor(rand() * clients.length);
      who = [...clients].sort(() => rand() - 0.5).slice(0, k);
    }
    const got = await Promise.all(who.map((c) => syncOnce(c, waves, rand, `wave ${waves} ${c.name}`)));
    records.push(...got);
    const t = tally(got);
    log(
      `wave ${waves}: ${got.map((r) => `${r.client}:${r.outcome}${r.snapshotId ? `(${r.snapshotId})` : ''}`).join(' ')}${t.error ? ' ERROR' : ''}`,
    );
  }

  // catch up one at a time (conflicts resolved keeping the local side) until a whole pass changes nothing
  let passes = 0;
  for (; passes < 8; passes++) {
    let quiet = true;
    for (const c of clients) {
      const conflicted = c.hasConflicts;
      if (conflicted) c.resolve(rand, 'L');
      const r = await syncOnce(c, waves + 1 + passes, rand, `catch up ${c.name}`);
      records.push(r);
      if (conflicted || r.outcome !== 'nothing') quiet = false;
    }
    if (quiet) break;
  }

  const problems: string[] = [];
  if (passes === 8) {
    const last = records.slice(-clients.length);
    problems.push(
      `the clients did not converge in 8 sequential passes; the last one:\n${last
        .map(
          (r) =>
            `  ${r.client} ${r.args.join(' ')} → ${r.outcome} (exit ${r.code}) ${r.stderr.trim().split('\n').slice(0, 4).join(' | ')}`,
        )
        .join('\n')}`,
    );
  }
  const snaps = history.read();
  problems.push(...checkRun(records, snaps, clients));

  // every tree is the head, and so is the repository's live tree
  const headId = [...snaps.keys()].sort(compareSnapshotIds).at(-1)!;
  const head = snaps.get(headId)!;
  const statuses = await Promise.all(clients.map((c) => dsgAsync(c.dir, c.env, ['--json', 'status'])));
  for (const [i, c] of clients.entries()) {
    const t = dataTree(c.dir);
    if (show(t) !== show(head))
      problems.push(`${c.name}'s final tree differs from ${headId}:\n  tree ${show(t)}\n  head ${show(head)}`);
    const st = statuses[i]!;
    if (st.code !== 0 || json<{ clean: boolean }>(st).clean !== true)
      problems.push(
        `${c.name}: status not clean after catching up (exit ${st.code}): ${st.stdout.slice(0, 500)} ${st.stderr.slice(0, 500)}`,
      );
  }
  const live = o.backend.liveTree(name);
  const liveTree = live ? dataTree(live) : new Map<string, string>();
  if (show(liveTree) !== show(head))
    problems.push(`the repository's live tree differs from its head manifest ${headId}`);

  // the chain: linear, valid, and the log lists exactly s1…sN
  const [vc, lg] = await Promise.all([
    dsgAsync(a.dir, a.env, ['--json', 'validate-chain']),
    dsgAsync(a.dir, a.env, ['--json', 'log', '-n', '100000']),
  ]);
  const vcDoc = vc.code === 0 ? json<{ ok: boolean; snapshots: number }>(vc) : null;
  if (!vcDoc?.ok || vcDoc.snapshots !== snaps.size)
    problems.push(
      `validate-chain: exit ${vc.code} ${vc.stdout.slice(0, 400)} ${vc.stderr.slice(0, 400)} (want ${snaps.size} snapshots)`,
    );
  const ids = lg.code === 0 ? json<{ snapshots: { snapshotId: string }[] }>(lg).snapshots.map((s) => s.snapshotId) : [];
  const want = Array.from({ length: snaps.size }, (_, i) => `s${snaps.size - i}`);
  if (ids.join(' ') !== want.join(' '))
    problems.push(
      `log --json lists ${ids.join(' ')} (exit ${lg.code} ${lg.stderr.slice(0, 300)}), want ${want.join(' ')}`,
    );
  const onDisk = o.backend.snapshots(name);
  if (onDisk.join(' ') !== [...want].reverse().join(' '))
    problems.push(`the backend holds snapshots ${onDisk.join(' ')}, want s1…s${snaps.size}`);
  const left = o.backend.leftovers(name);
  if (left.length) problems.push(`transaction leftovers on the repository: ${left.join(', ')}`);
  if (existsSync(o.backend.lockFile(name)))
    problems.push(`the repository lock ${o.backend.lockFile(name)} is still there`);

  return {
    sandbox: sb,
    result: {
      name,
      records,
      tally: tally(records),
      waves,
      catchUpPasses: passes + 1,
      snapshots: snaps.size,
      problems,
      ms: Date.now() - t0,
    },
  };
}
