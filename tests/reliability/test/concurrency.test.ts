import { afterAll, describe, expect, it } from 'vitest';
import { requireSsh, requireZfs } from '@dsg/testenv';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  dsg,
  ok,
  posixLocalBackend,
  sandbox,
  write,
  zfsSshBackend,
  type Backend,
  type Sandbox,
} from '../src/harness.js';
import { runScenario } from '../src/concurrency-run.js';
import { SimClient, checkRun, type SyncRecord, type Tree } from '../src/concurrency-model.js';

/*
 * Issue 10 item 2: four clients sync different and overlapping files to one
 * repository at the same moment, wave after wave. Every attempt must commit,
 * find nothing to do, refuse with a conflict (exit 3) or meet the lock
 * (exit 4); the chain stays linear and holds every commit; no client loses a
 * byte it offered (concurrency-model.ts).
 */
const zfs = requireZfs();
const ssh = requireSsh();
const SYNCS = Number(process.env['DSG_REL_CONCURRENCY_SYNCS'] ?? 20);
const cleanup: (Backend | Sandbox)[] = [];
afterAll(() => {
  for (const c of cleanup) {
    if ('destroy' in c) c.destroy();
    else c.remove();
  }
});

async function scenario(backend: Backend, seed: number): Promise<void> {
  cleanup.push(backend);
  const { result, sandbox } = await runScenario({ backend, clients: 4, syncs: SYNCS, seed, wave: 'all' });
  cleanup.push(sandbox);
  const t = result.tally;
  console.log(
    `[concurrency ${backend.label}] ${result.records.length} syncs in ${result.waves} waves + ${result.catchUpPasses} catch-up passes, ` +
      `${(result.ms / 1000).toFixed(1)} s: committed ${t.committed}, locked ${t.locked}, conflict ${t.conflict}, nothing ${t.nothing}, error ${t.error}; ${result.snapshots} snapshots`,
  );
  expect(result.problems, result.problems.join('\n')).toEqual([]);
  // the waves really raced: the lock turned someone away, and work got committed
  expect(t.locked).toBeGreaterThan(0);
  expect(t.committed).toBeGreaterThan(1);
}

// independent repositories and sandboxes: the two backends race side by side
describe.concurrent('concurrency: 4 clients, one repository', () => {
  it('posix over the local transport', () => scenario(posixLocalBackend(), 1001));
  it.skipIf(!zfs || !ssh)('zfs over the real sshd', () => scenario(zfsSshBackend(zfs!, ssh!), 2002));
});

describe('the checks themselves can fail', () => {
  const tree = (o: Record<string, string>): Tree => new Map(Object.entries(o));
  const rec = (client: string, outcome: SyncRecord['outcome'], snapshotId: string | null, after: Tree): SyncRecord => ({
    client,
    round: 1,
    args: ['sync'],
    outcome,
    snapshotId,
    treeAfter: after,
    code: 0,
    stderr: '',
    ms: 1,
  });
  it('flags a lost content, a gap in the chain, a commit whose tree differs from its snapshot, a double id and an unexpected exit', () => {
    const c = new SimClient({ name: 'A', dir: '/nonexistent-dsg-rel', env: {}, shared: [] });
    c.offered.set('feedfacefeedface', 'input/A/lost.txt');
    const history = new Map([
      ['s1', tree({ 'input/x': '1111' })],
      ['s3', tree({ 'input/x': '2222' })],
    ]);
    const problems = checkRun(
      [
        rec('A', 'committed', 's3', tree({ 'input/x': '3333' })),
        rec('B', 'committed', 's3', tree({ 'input/x': '2222' })),
        { ...rec('C', 'error', null, tree({})), code: 1, stderr: 'boom' },
      ],
      history,
      [c],
    ).join('\n');
    expect(problems).toMatch(/exit 1: boom/);
    expect(problems).toMatch(/committed twice: s3/);
    expect(problems).toMatch(/not s1…sN: s1 s3/);
    expect(problems).toMatch(/A committed s3 but its tree after the sync differs/);
    expect(problems).toMatch(/A lost input\/A\/lost.txt/);
    expect(
      checkRun(
        [rec('B', 'committed', 's2', tree({ 'input/x': '2222' }))],
        new Map([
          ['s1', tree({})],
          ['s2', tree({ 'input/x': '2222' })],
        ]),
        [],
      ),
    ).toEqual([]);
  });
});

describe('sync --continue that meets a new conflict', () => {
  it('keeps the answers already given in the new conflicts.txt, so the clients converge (found by the soak: they bounced forever)', () => {
    const b = posixLocalBackend();
    const sb = sandbox();
    cleanup.push(b, sb);
    const A = path.join(sb.dir, 'A');
    const B = path.join(sb.dir, 'B');
    for (const f of ['a', 'b', 'c']) write(path.join(A, 'input', `${f}.txt`), `${f} v1\n`);
    ok(dsg(A, sb.env, 'init', ...b.initArgs('cont'), '--repo-name', 'cont'));
    ok(dsg(sb.dir, sb.env, 'clone', ...b.cloneArgs('cont'), 'B'));
    // both change a and c → B gets a conflict on them
    for (const f of ['a', 'c']) write(path.join(A, 'input', `${f}.txt`), `${f} from A\n`);
    ok(dsg(A, sb.env, 'sync'));
    for (const f of ['a', 'c']) write(path.join(B, 'input', `${f}.txt`), `${f} from B\n`);
    expect(dsg(B, sb.env, 'sync').code).toBe(3);
    const conflicts = path.join(B, 'conflicts.txt');
    writeFileSync(conflicts, readFileSync(conflicts, 'utf8').replace(/^resolution: *$/gm, 'resolution: L'));
    // meanwhile both change b too: the --continue meets a conflict its file does not answer
    write(path.join(A, 'input', 'b.txt'), 'b from A\n');
    ok(dsg(A, sb.env, 'sync'));
    write(path.join(B, 'input', 'b.txt'), 'b from B\n');
    expect(dsg(B, sb.env, 'sync', '--continue').code).toBe(3);
    const again = readFileSync(conflicts, 'utf8');
    expect(again).toMatch(/path: input\/a\.txt\n[\s\S]*?resolution: L\n/);
    expect(again).toMatch(/path: input\/b\.txt\n[\s\S]*?resolution: \n/);
    expect(again).toMatch(/path: input\/c\.txt\n[\s\S]*?resolution: L\n/);
    // answering the one new conflict is enough
    writeFileSync(conflicts, again.replace(/^resolution: *$/gm, 'resolution: R'));
    ok(dsg(B, sb.env, 'sync', '--continue'));
    expect(readFileSync(path.join(B, 'input', 'a.txt'), 'utf8')).toBe('a from B\n');
    expect(readFileSync(path.join(B, 'input', 'b.txt'), 'utf8')).toBe('b from A\n');
    expect(readFileSync(path.join(B, 'input', 'c.txt'), 'utf8')).toBe('c from B\n');
  });
});
