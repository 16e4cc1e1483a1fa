#!/usr/bin/env node
import { runCli } from './program.js';

const code = await runCli({ argv: process.argv.slice(2) });
// Exit once stdout has drained (pipes are async); an idle ssh socket must not keep us alive.
process.exitCode = code;
process.stdout.write('', () => process.exit(code));
