#!/usr/bin/env node
import { runCli } from './program.js';

const code = await runCli({ argv: process.argv.slice(2) });
// Exit once stdout AND stderr have drained (pipes are async: an error line longer than the
// pipe buffer was cut at 64 KiB, losing its hint); an idle ssh socket must not keep us alive.
process.exitCode = code;
const drained = (s: NodeJS.WriteStream): Promise<void> => new Promise((resolve) => s.write('', () => resolve()));
await Promise.all([drained(process.stdout), drained(process.stderr)]);
process.exit(code);
