#!/usr/bin/env node
import { VERSION } from './version.js';

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
  const { runCli } = await import('./program.js');
  code = await runCli({ argv });
}
// Exit once stdout AND stderr have drained (pipes are async: an error line longer than the
// pipe buffer was cut at 64 KiB, losing its hint); an idle ssh socket must not keep us alive.
process.exitCode = code;
const drained = (s: NodeJS.WriteStream): Promise<void> => new Promise((resolve) => s.write('', () => resolve()));
await Promise.all([drained(process.stdout), drained(process.stderr)]);
process.exit(code);
