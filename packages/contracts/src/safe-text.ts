/**
 * Text that came from a repository or an agent (snapshot messages, user ids,
 * lock holders, paths, error messages) is printed to a terminal only through
 * here: a control character in it would be executed by the terminal (OSC 52
 * writes the clipboard, CSI 2K erases the line, a bidi override reorders what
 * is shown). JSON output is never passed through this: JSON escapes them
 * itself and consumers need the exact value.
 */

/** C0 controls, DEL, C1 controls, and the Unicode bidi/line controls a terminal or viewer acts on. */
// eslint-disable-next-line no-control-regex
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

const NAMED: Record<string, string> = {
  '\n': '\\n',
  '\r': '\\r',
  '\t': '\\t',
  '\u001b': '\\e',
  '\u0007': '\\a',
  '\b': '\\b',
};

function escapeOne(ch: string): string {
  const named = NAMED[ch];
  if (named) return named;
  const cp = ch.codePointAt(0)!;
  return cp <= 0xff ? `\\x${cp.toString(16).padStart(2, '0')}` : `\\u${cp.toString(16).padStart(4, '0')}`;
}

/** `s` with every control character shown as an escape (`\e`, `\a`, `\x9b`, `\u202e`), backslashes left alone. */
export function safeText(text: string): string {
  return text.replace(UNSAFE, escapeOne);
}

/** A copy of `v` with every string in it (keys included) passed through safeText: for human renderings of a result. */
export function safeDeep<T>(value: T): T {
  if (typeof value === 'string') return safeText(value) as T;
  if (Array.isArray(value)) return value.map((x: unknown) => safeDeep(x)) as T;
  if (value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(value as Record<string, unknown>)) out[safeText(k)] = safeDeep(x);
    return out as T;
  }
  return value;
}
