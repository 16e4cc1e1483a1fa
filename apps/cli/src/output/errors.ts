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

/** A stream that ended before its end: the agent or the SSH connection went away mid-reply. */
const PREMATURE = /\bPremature close\b/i;

const LOST_CONNECTION = {
  what: 'the connection to the repository host closed in the middle of a reply (the agent or ssh ended early)',
  todo: 'Check the connection to the repository host and run the command again; an interrupted sync is finished or undone by the next command.',
};

/** Plain words for the errno texts Node gives ("ENOENT: no such file or directory, realpath '/x'"). */
function describeErrno(e: NodeJS.ErrnoException): { what: string; todo: string; code: string } | null {
  const where = e.path ? ` ${e.path}` : '';
  switch (e.code) {
    case 'ENOENT':
      if (e.syscall === 'uv_cwd')
        return {
          what: 'the current directory no longer exists',
          todo: 'cd into an existing directory (it was removed or renamed) and run the command again.',
          code: 'NOT_FOUND',
        };
      return {
        what: `no such file or directory:${where || ' (unnamed)'}${e.syscall ? ` (${e.syscall})` : ''}`,
        todo: 'Check that the path exists; a file or directory may have been removed or renamed while dsg ran.',
        code: 'NOT_FOUND',
      };
    case 'ENOTDIR':
      return {
        what: `not a directory:${where}`,
        todo: 'A part of the path is a file where a directory was expected; check the path.',
        code: 'NOT_FOUND',
      };
    case 'EISDIR':
      return {
        what: `is a directory, expected a file:${where}`,
        todo: 'Name a file, not a directory.',
        code: 'VALIDATION',
      };
    case 'ELOOP':
      return {
        what: `too many levels of symbolic links:${where}`,
        todo: 'A symbolic link on the path points to itself (or a loop); fix or remove it.',
        code: 'VALIDATION',
      };
    case 'ENAMETOOLONG':
      return { what: `file name too long:${where}`, todo: 'Use a shorter path.', code: 'VALIDATION' };
    case 'ECONNRESET':
    case 'EPIPE':
    case 'ERR_STREAM_PREMATURE_CLOSE':
      return { ...LOST_CONNECTION, code: 'TRANSPORT' };
    default:
      return null;
  }
}

/** What happened (one line), what to do (one line), and the error code a non-dsg error is reported under, if any. */
export function describeError(err: unknown): { what: string; todo: string; code?: string } {
  if (err instanceof DsgError) {
    if (PREMATURE.test(err.message)) return LOST_CONNECTION;
    return { what: oneLine(err.message), todo: oneLine(err.recoveryHint) };
  }
  const e = err instanceof Error ? err : new Error(String(err));
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'EACCES' || code === 'EPERM')
    return { what: oneLine(e.message), todo: 'Check the permissions of the named path.' };
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return {
      what: oneLine(`no space left on this computer's disk: ${e.message}`),
      todo: 'Free some disk space here, then run the command again.',
      code: 'NO_SPACE',
    };
  }
  const errno = describeErrno(e);
  if (errno) return { what: oneLine(errno.what), todo: errno.todo, code: errno.code };
  if (PREMATURE.test(e.message)) return { ...LOST_CONNECTION, code: 'TRANSPORT' };
  return { what: oneLine(`internal error: ${e.message}`), todo: 'Run again with --debug and report the output.' };
}

export function serializeError(err: unknown): SerializedError {
  const s = errorToJSON(err);
  const d = describeError(err);
  if (!(err instanceof DsgError)) {
    s.recoveryHint = d.todo;
    if (d.code) Object.assign(s, { code: d.code, message: d.what });
  } else if (d.what !== oneLine(err.message)) {
    // a raw stream text ("Premature close") the human rendering rewrote: the same words in JSON
    Object.assign(s, { message: d.what, recoveryHint: d.todo });
  }
  return s;
}

function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, ' ').trim();
}
