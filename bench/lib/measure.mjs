// Timing and peak-RSS measurement of whole commands, the way a user runs them.
import { spawnSync } from 'node:child_process';

export function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 28, ...opts });
  if (r.status !== 0 && !opts.allowFail) {
    throw new Error(
      `${cmd} ${args.join(' ')} → exit ${r.status}\n${(r.stderr || '').slice(-2000)}${(r.stdout || '').slice(-1000)}`,
    );
  }
  return r;
}

/** Runs cmd under GNU time; returns seconds and peak RSS (MiB). */
export function timed(cmd, args, opts = {}) {
  const t0 = process.hrtime.bigint();
  const r = run('/usr/bin/time', ['-f', '%M', cmd, ...args], opts);
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const lines = (r.stderr || '').trim().split('\n');
  const kb = Number(lines[lines.length - 1]);
  return { secs, rssMiB: Number.isFinite(kb) ? kb / 1024 : NaN, stdout: r.stdout };
}

/**
 * `warmup` untimed runs, then `runs` timed ones; `setup` runs before each
 * (untimed) to reset state. Returns min/median/max seconds and max peak RSS
 * (of the measured process, and of the remote agent when measure() reports it).
 */
export function series({ runs, warmup = 1, setup, measure }) {
  for (let i = 0; i < warmup; i++) {
    setup?.(i);
    measure(i);
  }
  const secs = [];
  let rss = 0;
  let agentRss = 0;
  for (let i = 0; i < runs; i++) {
    setup?.(warmup + i);
    const m = measure(warmup + i);
    secs.push(m.secs);
    if (Number.isFinite(m.rssMiB)) rss = Math.max(rss, m.rssMiB);
    if (Number.isFinite(m.agentRssMiB)) agentRss = Math.max(agentRss, m.agentRssMiB);
  }
  secs.sort((a, b) => a - b);
  return {
    min: secs[0],
    median: secs[Math.floor(secs.length / 2)],
    max: secs[secs.length - 1],
    rssMiB: rss || null,
    agentRssMiB: agentRss || null,
    runs,
  };
}
