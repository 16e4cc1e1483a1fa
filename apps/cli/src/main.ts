#!/usr/bin/env node
import { setFlagsFromString } from 'node:v8';
import { VERSION } from './version.js';

const HEAP_GROWING_PERCENT = 20;

// A reader that stops early (`dsg log | head`) closes the pipe: stop quietly
// instead of dying on an unhandled EPIPE, with the command's own exit code
// when it has one, else 141 (128 + SIGPIPE: what git's death by SIGPIPE
// gives a `pipefail` script).
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(typeof process.exitCode === 'number' ? process.exitCode : 141);
  throw e;
});

// `dsg --version` answers before anything else loads: scripts call it to
// probe for dsg, and it should cost no more than starting node.
const argv = process.argv.slice(2);
let code: number;
if (argv.length === 1 && argv[0] === '--version') {
  process.stdout.write(`${VERSION}\n`);
  code = 0;
} else {
  // The old generation may grow 20 % past what the last full collection left alive, not V8's default
  // of up to 4×: a command over 100k entries makes a manifest's worth of garbage per phase, and let grow
  // freely that garbage, not live data, set its peak (sync of 100k entries 284 → 227 MiB, ~5 % slower;
  // bench w11). Read by V8 at each collection, so it holds when set here, before the work starts.
  setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
  const { runCli } = await import('./program.js');
  code = await runCli({ argv });
}
// Exit once stdout AND stderr have drained (pipes are async: an error line longer than the
// pipe buffer was cut at 64 KiB, losing its hint); an idle ssh socket must not keep us alive.
process.exitCode = code;
const drained = (s: NodeJS.WriteStream): Promise<void> => new Promise((resolve) => s.write('', () => resolve()));
await Promise.all([drained(process.stdout), drained(process.stderr)]);
process.exit(code);
