#!/usr/bin/env node
import module from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { VERSION } from './version.js';

/**
 * Node ≥ 22.1 can keep V8's compiled code of the chunks between runs; kept in
 * the user's own cache directory, which only they can write (the shared
 * default in the temp directory would let another user plant code there).
 * Node 20 has no such cache.
 */
function keepCompiledCode(): void {
  const enable = (module as { enableCompileCache?: (dir: string) => unknown }).enableCompileCache;
  if (!enable) return;
  // a relative XDG_CACHE_HOME is to be ignored (XDG spec): it would put the cache in a working copy
  const xdg = process.env['XDG_CACHE_HOME'];
  const cacheHome = xdg && path.isAbsolute(xdg) ? xdg : path.join(os.homedir(), '.cache');
  enable(path.join(cacheHome, 'dsg', 'compile-cache'));
}

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
  keepCompiledCode();
  const { runCli } = await import('./program.js');
  code = await runCli({ argv });
}
// Exit once stdout AND stderr have drained (pipes are async: an error line longer than the
// pipe buffer was cut at 64 KiB, losing its hint); an idle ssh socket must not keep us alive.
process.exitCode = code;
const drained = (s: NodeJS.WriteStream): Promise<void> => new Promise((resolve) => s.write('', () => resolve()));
await Promise.all([drained(process.stdout), drained(process.stderr)]);
process.exit(code);
