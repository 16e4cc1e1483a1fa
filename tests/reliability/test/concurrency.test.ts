import { afterAll, describe, expect, it } from 'vitest';
import { requireSsh, requireZfs } from '@dsg/testenv';
import { posixLocalBackend, zfsSshBackend, type Backend, type Sandbox } from '../src/harness.js';
import { runScenario } from '../src/concurrency-run.js';

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

describe('concurrency: 4 clients, one repository', () => {
  it('posix over the local transport', () => scenario(posixLocalBackend(), 1001), 150_000);
  it.skipIf(!zfs || !ssh)('zfs over the real sshd', () => scenario(zfsSshBackend(zfs!, ssh!), 2002), 150_000);
});
