import { ConfigError, ConflictError, DsgError, LockedError, errorToJSON, type SerializedError } from '@dsg/contracts';

/** Exit codes, documented in --help and the README. */
export const EXIT = { ok: 0, error: 1, usage: 2, conflicts: 3, locked: 4 } as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** A command line the user got wrong (bad option value, missing argument): exit 2. */
export class UsageError extends DsgError {
  constructor(message: string, recoveryHint = 'See `dsg <command> --help` for the options and an example.') {
    super('USAGE', message, { recoveryHint });
  }
}

/** An operation this build cannot do (e.g. --normalize): exit 1, says so plainly. */
export class UnsupportedError extends DsgError {
  constructor(message: string, recoveryHint: string) {
    super('UNSUPPORTED', message, { recoveryHint });
  }
}

export function exitCodeFor(err: unknown): ExitCode {
  if (err instanceof ConfigError || err instanceof UsageError) return EXIT.usage;
  if (err instanceof ConflictError) return EXIT.conflicts;
  if (err instanceof LockedError) return EXIT.locked;
  return EXIT.error;
}

/** What happened (one line), what to do (one line), and the error code a non-dsg error is reported under, if any. */
export function describeError(err: unknown): { what: string; todo: string; code?: string } {
  if (err instanceof DsgError) return { what: oneLine(err.message), todo: oneLine(err.recoveryHint) };
  const e = err instanceof Error ? err : new Error(String(err));
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'EACCES' || code === 'EPERM') return { what: oneLine(e.message), todo: 'Check the permissions of the named path.' };
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return { what: oneLine(`no space left on this computer's disk: ${e.message}`), todo: 'Free some disk space here, then run the command again.', code: 'NO_SPACE' };
  }
  return { what: oneLine(`internal error: ${e.message}`), todo: 'Run again with --debug and report the output.' };
}

export function serializeError(err: unknown): SerializedError {
  const s = errorToJSON(err);
  if (!(err instanceof DsgError)) {
    const d = describeError(err);
    s.recoveryHint = d.todo;
    if (d.code) Object.assign(s, { code: d.code, message: d.what });
  }
  return s;
}

function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, ' ').trim();
}
