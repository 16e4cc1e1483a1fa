// Sums every package's vitest JSON report into one table and a closing line
// `tests: N passed, N failed, N skipped` that a CI log reader can find.
import { readFileSync, existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

const pkgs = JSON.parse(execFileSync('pnpm', ['-r', 'ls', '--depth', '-1', '--json'], { encoding: 'utf8' }));
let passed = 0, failed = 0, skipped = 0, missing = 0;
const rows = [];
for (const p of pkgs) {
  const f = `${p.path}/test-results/vitest.json`;
  if (!p.name.startsWith('@dsg/') || !existsSync(`${p.path}/vitest.config.ts`)) continue;
  if (!existsSync(f)) { rows.push([p.name, '-', '-', '-', 'no report']); missing++; continue; }
  const r = JSON.parse(readFileSync(f, 'utf8'));
  const skip = r.numPendingTests + r.numTodoTests;
  passed += r.numPassedTests; failed += r.numFailedTests; skipped += skip;
  rows.push([p.name, r.numPassedTests, r.numFailedTests, skip, r.success ? 'ok' : 'FAILED']);
}
const w = Math.max(...rows.map((r) => r[0].length));
console.log(`\n${'package'.padEnd(w)}  passed  failed  skipped`);
for (const r of rows) console.log(`${r[0].padEnd(w)}  ${String(r[1]).padStart(6)}  ${String(r[2]).padStart(6)}  ${String(r[3]).padStart(7)}  ${r[4]}`);
console.log(`tests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed > 0 || missing > 0 ? 1 : 0);
