// Sums every package's vitest JSON report into one table, lists each failed
// test with the first line of its error, and ends with a closing line
// `tests: N passed, N failed, N skipped` that a CI log reader can find. Errors
// vitest caught outside any test (test-results/unhandled.json) count as failures.
// With an argument, the same text is also written to that file, so CI can
// print the summary of every run again at the very end of its log.
// `--failed` prints only the names of the packages whose run failed (or left
// no report), one a line: what scripts/test.sh runs again after zfs-fuse failed.
import { readFileSync, existsSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

const onlyFailed = process.argv[2] === '--failed';
const out = [];
const say = (line) => {
  out.push(line);
  console.log(line);
};
const pkgs = JSON.parse(execFileSync('pnpm', ['-r', 'ls', '--depth', '-1', '--json'], { encoding: 'utf8' }));
let passed = 0,
  failed = 0,
  skipped = 0,
  missing = 0,
  unhandled = 0;
const rows = [];
const failures = [];
const failedPkgs = [];
for (const p of pkgs) {
  const f = `${p.path}/test-results/vitest.json`;
  if (!p.name.startsWith('@dsg/') || !existsSync(`${p.path}/vitest.config.ts`)) continue;
  if (!existsSync(f)) {
    rows.push([p.name, '-', '-', '-', 'no report']);
    failedPkgs.push(p.name);
    missing++;
    continue;
  }
  const r = JSON.parse(readFileSync(f, 'utf8'));
  const skip = r.numPendingTests + r.numTodoTests;
  passed += r.numPassedTests;
  failed += r.numFailedTests;
  skipped += skip;
  // errors outside any test make vitest exit 1 though every test passed
  const u = `${p.path}/test-results/unhandled.json`;
  const stray = existsSync(u) ? (JSON.parse(readFileSync(u, 'utf8')).errors ?? []) : [];
  let strays = stray.length;
  for (const e of stray)
    failures.push(
      `UNHANDLED ${p.name} ${e.name}: ${String(e.message).slice(0, 300)}\n       ${e.stack.split('\n').slice(1, 4).join('\n       ')}`,
    );
  // an unhandled rejection in vitest's own process never reaches a reporter:
  // show what the package's log says of it
  const log = `${p.path}/.turbo/turbo-test.log`;
  if (existsSync(log)) {
    const lines = readFileSync(log, 'utf8')
      .replace(/\x1b\[[0-9;]*m/g, '')
      .split('\n');
    const at = lines.findIndex((line) => /Unhandled (Error|Rejection)|\[vitest-(pool|worker)\]/.test(line));
    if (at >= 0 && strays === 0) {
      strays = 1;
      failures.push(`UNHANDLED ${p.name} (from its log)\n       ${lines.slice(at, at + 20).join('\n       ')}`);
    }
  }
  unhandled += strays;
  const ok = r.success && strays === 0;
  if (!ok) failedPkgs.push(p.name);
  rows.push([p.name, r.numPassedTests, r.numFailedTests, skip, ok ? 'ok' : strays ? `${strays} unhandled` : 'FAILED']);
  for (const file of r.testResults ?? []) {
    const rel = file.name.startsWith(p.path) ? file.name.slice(p.path.length + 1) : file.name;
    for (const t of file.assertionResults ?? []) {
      if (t.status !== 'failed') continue;
      // a timed-out test's report holds only a stack ("STACK_TRACE_ERROR"): its duration tells
      const msg = String((t.failureMessages ?? [])[0] ?? '')
        .split('\n')[0]
        .slice(0, 300);
      const took = typeof t.duration === 'number' ? ` (after ${(t.duration / 1000).toFixed(1)} s)` : '';
      failures.push(`FAILED ${p.name} ${rel} › ${t.fullName}${took}\n       ${msg}`);
    }
    // a file that failed to load has no assertion results, only a message
    if (file.status === 'failed' && !(file.assertionResults ?? []).some((t) => t.status === 'failed')) {
      failures.push(
        `FAILED ${p.name} ${rel}\n       ${String(file.message ?? '')
          .split('\n')[0]
          .slice(0, 300)}`,
      );
    }
  }
}
if (onlyFailed) {
  for (const name of failedPkgs) console.log(name);
  process.exit(0);
}
const w = Math.max(...rows.map((r) => r[0].length));
say(`\nnode ${process.version}`);
say(`${'package'.padEnd(w)}  passed  failed  skipped`);
for (const r of rows)
  say(
    `${r[0].padEnd(w)}  ${String(r[1]).padStart(6)}  ${String(r[2]).padStart(6)}  ${String(r[3]).padStart(7)}  ${r[4]}`,
  );
for (const f of failures) say(f);
say(
  `tests: ${passed} passed, ${failed} failed, ${skipped} skipped${unhandled ? `, ${unhandled} unhandled errors` : ''}`,
);
if (process.argv[2]) writeFileSync(process.argv[2], out.join('\n') + '\n', { flag: 'a' });
process.exit(failed > 0 || missing > 0 || unhandled > 0 ? 1 : 0);
