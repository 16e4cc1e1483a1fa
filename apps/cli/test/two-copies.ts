import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { dsg, ok, sandbox, write } from './helpers.js';

const made: string[] = [];

/** Remove every sandbox and repository twoCopies made (call from afterAll). */
export function removeCopies(): void {
  for (const d of made.splice(0)) rmSync(d, { recursive: true, force: true });
}

export interface TwoCopies {
  env: NodeJS.ProcessEnv;
  /** the copy that ran init */
  A: string;
  /** a clone of it */
  B: string;
  /** the posix repository root (the repository is `p` in it) */
  repos: string;
}

/** Two working copies of one posix repository on this machine, holding input/<f>.txt (`<f> v1`) at s1. */
export function twoCopies(files = ['a', 'b', 'c']): TwoCopies {
  const sb = sandbox();
  const repos = mkdtempSync(path.join(os.tmpdir(), 'dsg-cli-two-'));
  made.push(sb.dir, repos);
  const A = path.join(sb.dir, 'A');
  for (const f of files) write(path.join(A, 'input', `${f}.txt`), `${f} v1\n`);
  ok(dsg(A, sb.env, 'init', '--host', 'localhost', '--repo-type', 'posix', '--repo-path', repos, '--repo-name', 'p'));
  ok(dsg(sb.dir, sb.env, 'clone', `localhost:${repos}/p`, 'B'));
  return { env: sb.env, A, B: path.join(sb.dir, 'B'), repos };
}
