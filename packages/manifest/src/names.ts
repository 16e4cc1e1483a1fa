/**
 * Name rules (docs/ARCHITECTURE.md §2 "Names"; the original's
 * filename_validation.py): every component of a
 * project-relative path is checked; the first problem found is returned
 * as a human-readable reason, or null when the path is acceptable.
 */
import { NAME_MAX } from '@dsg/contracts';

const RESERVED = new Set([
  'con',
  'prn',
  'aux',
  'nul',
  ...Array.from({ length: 9 }, (_, i) => `com${i + 1}`),
  ...Array.from({ length: 9 }, (_, i) => `lpt${i + 1}`),
]);

const ILLEGAL_CHARS = new Set(['<', '>', '"', '|', '?', '*']);

/**
 * The original's rule (HRDAG/dsg `filename_validation.py` `_has_unsafe_unicode`):
 * every Unicode general category C character — controls (C0, DEL, C1),
 * format (soft hyphen, BOM, bidi and zero-width marks), surrogates, private
 * use, unassigned — plus its list of invisible symbols that are not in C.
 */
const CATEGORY_C = /\p{C}/u;

function isIllegalCodePoint(cp: number, ch: string): boolean {
  return (
    CATEGORY_C.test(ch) ||
    cp <= 0x1f ||
    cp === 0x2028 ||
    cp === 0x2029 ||
    (cp >= 0x202a && cp <= 0x202e) ||
    (cp >= 0x200b && cp <= 0x200d) ||
    cp === 0x2060 ||
    (cp >= 0x2066 && cp <= 0x2069) ||
    (cp >= 0xfff9 && cp <= 0xfffc) ||
    cp === 0x1d159 ||
    cp === 0x1d173 ||
    cp === 0x1d17a ||
    cp === 0x0378
  );
}

const cpName = (cp: number): string => `U+${cp.toString(16).toUpperCase().padStart(4, '0')}`;

/** Printable ASCII without the illegal characters `<>"|?*` (and so without controls or non-NFC text). */
const PLAIN = /^[ !#-)+-;=@-{}~]+$/;

/**
 * Why `component` is refused as one path component, or null. Most names are
 * plain ASCII: those pass or fail on a few character tests (per-character
 * Unicode checks cost ~4 µs a name, half a 100k-file scan's name checking);
 * anything else, and every refusal, goes through componentProblem, which
 * words the reason. A test checks the two agree on random names.
 */
export function validateComponent(component: string): string | null {
  if (component.length <= NAME_MAX && PLAIN.test(component)) {
    const first = component.charCodeAt(0);
    const last = component.charCodeAt(component.length - 1);
    const dot = component.indexOf('.');
    const baseLength = dot < 0 ? component.length : dot;
    if (
      first !== 0x20 &&
      last !== 0x20 &&
      first !== 0x7e &&
      last !== 0x7e &&
      component !== '.' &&
      component !== '..' &&
      (baseLength < 3 || baseLength > 4 || !RESERVED.has(component.slice(0, baseLength).toLowerCase()))
    )
      return null;
  }
  return componentProblem(component);
}

/** validateComponent's full rule, character by character (exported for the test that compares the two). */
export function componentProblem(component: string): string | null {
  if (component === '') return 'empty path component';
  if (component === '.' || component === '..') return `"${component}" component`;
  if (Buffer.byteLength(component, 'utf8') > NAME_MAX) return `component longer than ${NAME_MAX} bytes`;
  if (component.trim() !== component) return 'leading or trailing whitespace';
  if (component.startsWith('~') || component.endsWith('~')) return 'temporary or backup name (starts or ends with ~)';
  for (const ch of component) {
    const cp = ch.codePointAt(0) ?? 0;
    if (ILLEGAL_CHARS.has(ch)) return `illegal character ${JSON.stringify(ch)}`;
    // A lone surrogate cannot be encoded in UTF-8 and would not round-trip.
    if (cp >= 0xd800 && cp <= 0xdfff) return `unpaired surrogate ${cpName(cp)}`;
    if (isIllegalCodePoint(cp, ch)) return `illegal character ${cpName(cp)}`;
  }
  const base = (component.split('.')[0] ?? '').toLowerCase();
  if (RESERVED.has(base)) return `Windows reserved name "${base}"`;
  if (component.normalize('NFC') !== component) return 'not in Unicode NFC (normalization form C)';
  return null;
}

/** Why `relPath` is refused as a project path, or null when it is fine. */
/** `s` for a message: past `max` characters cut, with its full length (hostile input may be megabytes). */
export function shorten(s: string, max: number): string {
  return s.length > max ? `${s.slice(0, max)}…(${s.length} characters)` : s;
}

export function validateName(relPath: string): string | null {
  if (relPath === '') return 'empty path';
  if (relPath.startsWith('/')) return 'absolute path';
  // A drive (`C:`, `C:/…`) is refused; `c:notes.csv` is a name, as in the original. (The original
  // also lets `C:/x` through; on a Windows client that is a path on drive C, so it stays refused.)
  if (/^[A-Za-z]:(\/|$)/.test(relPath)) return 'Windows drive path';
  if (relPath.startsWith('./') || relPath.startsWith('../')) return 'path starts with ./ or ../';
  if (relPath.includes('\\')) return 'contains a backslash';
  for (const c of relPath.split('/')) {
    const why = validateComponent(c);
    // shown shortened: a hostile manifest may hold a component of megabytes
    if (why) return `${why} in ${JSON.stringify(shorten(c, 100))}`;
  }
  return null;
}

/**
 * For `--normalize`: the NFC form of `relPath` when that is what keeps it
 * from being accepted (the NFC form passes every rule), else null.
 */
export function nfcRepair(relPath: string): string | null {
  const nfc = relPath.normalize('NFC');
  if (nfc === relPath) return null;
  return validateName(nfc) === null ? nfc : null;
}

/** The reader's link rule is contracts' (one gate for every copy that had drifted). */
export { linkTargetEscapes as validateLinkTarget } from '@dsg/contracts';
