#!/usr/bin/env node
import { VERSION } from './version.js';

// `dsg --version` answers before the command table is even loaded: scripts
// call it to probe for dsg, and it should cost no more than starting node.
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
