import { writeSync } from 'node:fs';
import type { ClientFilesystem, RemoteRepository } from '@dsg/contracts';
import type { Ctx } from './context.js';

/** The exit code of a command stopped by Ctrl-C (128 + SIGINT), as a shell reports it. */
export const EXIT_INTERRUPTED = 130;

/**
 * How far a sync, init or clone got, as its calls show it: the repository's
 * transaction begun / commit asked, this copy's staging begun / apply
 * (journal) started. Each answer to Ctrl-C follows from it.
 */
type Stage = 'planning' | 'staging' | 'transaction' | 'committing' | 'applying';

export interface InterruptScope {
  command: 'sync' | 'init' | 'clone';
  /** the command to run again (clone: with its source, destination and --resume) */
  again: string;
  /** clone: the new working copy */
  dest?: string;
}

/** What was undone and what the next command does, for the stage reached. */
export function interruptMessage(scope: InterruptScope, stage: Stage): { what: string; todo: string } {
  const again = `\`${scope.again}\``;
  if (scope.command === 'clone') {
    if (stage === 'applying')
      return {
        what: 'interrupted while the cloned files were put in place (every change is journaled); nothing was written to the repository (a clone only reads it)',
        todo: `Run \`dsg status\` in ${scope.dest}: it finishes putting the files in place, and the clone is complete.`,
      };
    return {
      what: 'interrupted: nothing was written to the repository (a clone only reads it); the files downloaded so far are kept, verified, in the new directory',
      todo: `Run ${again}: it keeps what already arrived and fetches the rest.`,
    };
  }
  const first = scope.command === 'init';
  switch (stage) {
    case 'planning':
    case 'staging':
      return {
        what: `interrupted before anything was written: the repository${first ? ' was not created' : ' is unchanged'}, and your files are unchanged`,
        todo: `Run ${again} when you are ready.`,
      };
    case 'transaction':
      return {
        what: `interrupted: the transaction was discarded — nothing reached the repository${first ? ' (it was not created)' : ''} (the agent drops its work area when the session ends, or the next command does), and your files are unchanged (what arrived was staged under .dsg/, not applied)`,
        todo: `Run ${again}; it resumes: content already uploaded or downloaded is kept and not transferred again.`,
      };
    case 'committing':
      return {
        what: `interrupted while the repository committed the new snapshot: it has either all of it or none of it; your files' changes are journaled (.dsg/journal)`,
        todo: 'Run `dsg status`: it asks the repository, then finishes applying the snapshot here or undoes it (your files restored).',
      };
    case 'applying':
      return {
        what: `interrupted while your files were being updated: every change is journaled (.dsg/journal)`,
        todo: 'Run `dsg status` (or any dsg command): it finishes applying the snapshot, or restores your files if the repository does not have it.',
      };
  }
}

/**
 * Run a sync, init or clone with a Ctrl-C handler that says what was rolled
 * back and what the next command will do, then exits 130 at once (the agent
 * rolls back a session's open transaction when the session ends; what an
 * in-process one leaves, the next command's recovery removes). `fn` gets
 * wrappers for the client filesystem and the repository that record how far
 * the command got; they change nothing else.
 */
export async function interruptible<T>(
  ctx: Ctx,
  scope: InterruptScope,
  fn: (watch: {
    clientFs: <C extends ClientFilesystem>(c: C) => C;
    remote: <R extends RemoteRepository>(r: R) => R;
  }) => Promise<T>,
): Promise<T> {
  let stage: Stage = 'planning';
  const advance = (to: Stage): void => {
    const order: Stage[] = ['planning', 'staging', 'transaction', 'committing', 'applying'];
    if (order.indexOf(to) > order.indexOf(stage)) stage = to;
  };
  const onSigint = (): void => {
    const { what, todo } = interruptMessage(scope, stage);
    // written synchronously: the process exits right after
    writeSync(2, `error: ${what}\nhint: ${todo}\n`); // an error: shown under --quiet too
    if (ctx.out.opts.json)
      writeSync(
        1,
        JSON.stringify(
          {
            error: { name: 'InterruptedError', code: 'INTERRUPTED', message: what, recoveryHint: todo },
            exitCode: EXIT_INTERRUPTED,
          },
          null,
          2,
        ) + '\n',
      );
    process.exit(EXIT_INTERRUPTED);
  };
  process.on('SIGINT', onSigint);
  try {
    return await fn({
      clientFs: (c) =>
        watched(c, {
          begin: () => advance('staging'),
          // the journal is written here, before the repository commits (transaction) or the apply (client only)
          setRemoteSnapshot: () => advance(stage === 'planning' || stage === 'staging' ? 'applying' : stage),
          commit: () => advance('applying'),
        }),
      remote: (r) => watched(r, { begin: () => advance('transaction'), commit: () => advance('committing') }),
    });
  } finally {
    process.off('SIGINT', onSigint);
  }
}

/** `target` with `on[method]` called before each call of that method (the call itself unchanged). */
function watched<T extends object>(target: T, on: Record<string, () => void>): T {
  return new Proxy(target, {
    get(t, prop, _receiver) {
      const v: unknown = Reflect.get(t, prop, t);
      if (typeof v !== 'function') return v;
      const hook = typeof prop === 'string' ? on[prop] : undefined;
      return (...args: unknown[]): unknown => {
        hook?.();
        return (v as (...a: unknown[]) => unknown).apply(t, args);
      };
    },
  });
}
