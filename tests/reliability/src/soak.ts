/**
 * Long soak (issue 10 item 6; a bench-style script, NOT run in CI):
 *
 *   pnpm --filter @dsg/reliability run build
 *   pnpm --filter @dsg/reliability run soak -- [--rounds 500] [--clients 3] [--seed N] [--backend posix|zfs] [--keep]
 *
 * `--rounds` random syncs between `--clients` working directories on one
 * repository, in waves: every client makes random edits, deletes and
 * renames (own files and three shared ones, so conflicts happen), then a
 * random subset of the clients syncs at the same moment (the others meet
 * the lock, or conflicts, which are resolved on their next turn). Then every
 * client catches up one at a time and everything is validated
 * (concurrency-run.ts): validate-chain, log, every client tree == the
 * repository's head == its live tree, every commit's tree == its snapshot,
 * no content a client offered lost, no transaction leftovers, no lock.
 * Exit 0 when all holds, 1 with the problems listed otherwise. `--backend
 * zfs` uses the test pool over the test sshd (tooling/testenv).
 */
import { parseArgs } from 'node:util';
import { sshEnv, zfsEnv } from '@dsg/testenv';
import { posixLocalBackend, zfsSshBackend, type Backend } from './harness.js';
import { runScenario } from './concurrency-run.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '500' },
    clients: { type: 'string', default: '3' },
    seed: { type: 'string' },
    backend: { type: 'string', default: 'posix' },
    keep: { type: 'boolean', default: false },
    quiet: { type: 'boolean', default: false },
  },
  allowPositionals: false,
});

const rounds = Number(values.rounds);
const clients = Number(values.clients);
const seed = values.seed !== undefined ? Number(values.seed) : Date.now() % 1_000_000;
if (
  !Number.isInteger(rounds) ||
  rounds < 1 ||
  !Number.isInteger(clients) ||
  clients < 2 ||
  clients > 26 ||
  !Number.isInteger(seed)
) {
  console.error('usage: soak [--rounds N>=1] [--clients 2..26] [--seed N] [--backend posix|zfs] [--keep] [--quiet]');
  process.exit(2);
}

let backend: Backend;
if (values.backend === 'posix') backend = posixLocalBackend('posix/local');
else if (values.backend === 'zfs') {
  const z = zfsEnv();
  const s = sshEnv();
  if (!z || !s) {
    console.error('--backend zfs needs the test pool and sshd: bash tooling/testenv/testenv.sh up (as root)');
    process.exit(2);
  }
  backend = zfsSshBackend(z, s, { label: 'zfs/ssh' });
} else {
  console.error(`unknown --backend ${values.backend} (posix or zfs)`);
  process.exit(2);
}

console.log(`soak: ${rounds} syncs, ${clients} clients, ${backend.label}, seed ${seed}`);
let lastLog = Date.now();
const { result, sandbox } = await runScenario({
  backend,
  clients,
  syncs: rounds,
  seed,
  wave: 'random',
  log: (line) => {
    if (values.quiet && Date.now() - lastLog < 10_000) return;
    lastLog = Date.now();
    console.log(`  ${line}`);
  },
});
const t = result.tally;
const s = result.ms / 1000;
console.log(
  [
    `soak ${result.problems.length ? 'FAILED' : 'ok'} (${backend.label}, seed ${seed}):`,
    `  ${result.records.length} sync attempts (${result.waves} waves + ${result.catchUpPasses} catch-up passes) in ${s.toFixed(1)} s (${(result.records.length / s).toFixed(2)} syncs/s)`,
    `  committed ${t.committed}, locked ${t.locked}, conflict ${t.conflict}, nothing to do ${t.nothing}, error ${t.error}`,
    `  ${result.snapshots} snapshots, chain valid, every tree == head, no leftovers: ${result.problems.length ? 'NO' : 'yes'}`,
  ].join('\n'),
);
for (const p of result.problems) console.log(`  PROBLEM: ${p}`);
if (values.keep) console.log(`kept: sandbox ${sandbox.dir}; repository ${backend.label} ${result.name}`);
else {
  sandbox.remove();
  backend.destroy();
}
process.exit(result.problems.length ? 1 : 0);
