import { ConfigError } from './errors.js';

/**
 * The longest snapshot message, in UTF-8 bytes.
 *
 * Why 2048: the ZFS backend stores the message twice as a user property —
 * `dsg:message` on the snapshot, and inside the JSON of `dsg:pending`, which
 * also carries the snapshot id, hash, user and time — and a ZFS user property
 * value holds at most 8191 bytes (`strlen < ZAP_MAXVALUELEN` = 8192;
 * zfs-fuse answers "Argument list too long" from 8192 on). Percent-encoding
 * turns one `%` into three bytes, the worst case once control characters are
 * refused, so 3 × 2048 = 6144 bytes leaves ~2 KiB for the rest of
 * `dsg:pending`. A message that does not fit used to be found only at commit,
 * after every file had been transferred.
 */
export const MAX_SNAPSHOT_MESSAGE_BYTES = 2048;

// C0 controls except tab and newline, DEL, C1 controls: a message is shown to
// teammates by `dsg log`, and an escape sequence in it would be sent to their terminal.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/;
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** Why `message` cannot be a snapshot message, or null when it can. */
export function snapshotMessageProblem(message: string): string | null {
  if (typeof message !== 'string') return 'is not a string';
  const bytes = Buffer.byteLength(message, 'utf8');
  if (bytes > MAX_SNAPSHOT_MESSAGE_BYTES)
    return `is ${bytes} bytes long; the limit is ${MAX_SNAPSHOT_MESSAGE_BYTES} bytes (UTF-8)`;
  const c = CONTROL.exec(message);
  if (c)
    return `contains the control character U+${c[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')} at character ${c.index + 1} (only newline and tab are allowed)`;
  if (LONE_SURROGATE.test(message)) return 'is not valid Unicode (a lone UTF-16 surrogate)';
  return null;
}

/**
 * Refuse a snapshot message that a repository could not store, before
 * anything is locked or transferred: longer than
 * `MAX_SNAPSHOT_MESSAGE_BYTES` UTF-8 bytes, a control character other than
 * newline and tab, or not valid Unicode. Throws a `ConfigError` (a
 * `ValidationError`; the CLI's exit code 2) with `details.field` = `message`.
 */
export function assertSnapshotMessage(message: string): void {
  const problem = snapshotMessageProblem(message);
  if (problem === null) return;
  throw new ConfigError(
    `the snapshot message ${problem}`,
    { field: 'message' },
    {
      recoveryHint: `Give a message (-m) of at most ${MAX_SNAPSHOT_MESSAGE_BYTES} bytes of plain text (newlines and tabs are allowed); nothing was changed.`,
    },
  );
}
