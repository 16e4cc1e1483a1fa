import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DsgError } from '@dsg/contracts';
import type { Ctx } from '../context.js';

/**
 * The demo ships as dist/demo.js beside dist/main.js; this module runs from
 * dist/commands/ (tsc output) or dist/bin/chunks/ (the bundle), so look a few
 * levels up for the pair rather than hard-coding one layout.
 */
export function demoScript(from = path.dirname(fileURLToPath(import.meta.url))): string | undefined {
  let dir = from;
  for (let i = 0; i < 3; i++) {
    const script = path.join(dir, 'demo.js');
    if (existsSync(script) && existsSync(path.join(dir, 'main.js'))) return script;
    dir = path.dirname(dir);
  }
  return undefined;
}

/** `dsg demo`: the local demo (a project, a posix repository in a temp dir, two working copies). */
export function demoCommand(ctx: Ctx, opts: { keep?: boolean }): number {
  const script = demoScript();
  if (!script) {
    throw new DsgError('NOT_FOUND', 'the demo script is not installed beside this dsg', {
      recoveryHint: 'Reinstall the package: npm i -g @dsg/cli',
    });
  }
  // the demo drives this same binary as a user would, each step in a child process
  const r = spawnSync(process.execPath, [script, ...(opts.keep ? ['--keep'] : [])], {
    cwd: ctx.cwd,
    env: ctx.env,
    stdio: 'inherit',
  });
  return r.status ?? 1;
}
