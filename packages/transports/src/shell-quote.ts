import { TransportError } from '@dsg/contracts';

/**
 * One argument for a POSIX shell: wrapped in single quotes, each embedded
 * quote written as '\''. sshd runs the exec request through the user's
 * shell, so the argument vector has to be quoted; control characters (NUL,
 * newlines, escapes) are refused rather than quoted, so nothing a user
 * config says can end the command early.
 */
export function quoteShellArg(arg: string): string {
  if (typeof arg !== 'string') throw new TransportError('agent command arguments must be strings');
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(arg)) {
    throw new TransportError(
      `refused agent command argument ${JSON.stringify(arg.slice(0, 80))}: it contains a control character`,
      {
        recoveryHint: 'Fix the agent command or repository path in the configuration.',
      },
    );
  }
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

export function shellCommand(argv: readonly string[]): string {
  if (argv.length === 0)
    throw new TransportError('the agent command is empty', { recoveryHint: 'Configure the agent command.' });
  return argv.map(quoteShellArg).join(' ');
}
