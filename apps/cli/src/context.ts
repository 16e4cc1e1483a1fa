import type { Output } from './output/output.js';

/** What every command handler gets: where it runs and how to print. */
export interface Ctx {
  out: Output;
  cwd: string;
  env: NodeJS.ProcessEnv;
  /** stdin is a terminal (prompts are allowed only then) */
  interactive: boolean;
  /** where command output goes (process.stdout when absent): for the commands that write data there */
  stdout?: NodeJS.WriteStream;
}

/** A handler returns its exit code (0 when omitted); errors are thrown as DsgError. */
export type Handler<A extends unknown[]> = (ctx: Ctx, ...args: A) => Promise<number | void>;
