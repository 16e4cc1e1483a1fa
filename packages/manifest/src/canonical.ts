import type { ManifestEntry } from './model.js';

/*
 * A fast reader for the entries of a manifest in exactly the layout
 * serializeManifest writes (2-space JSON, known fields only, in their order,
 * strings without escapes, sizes as plain digits) — every last-sync.json dsg
 * wrote. On 100k entries JSON.parse, the duplicate-key scan and the shape
 * checks took ~0.5 s of a warm `dsg status`; this reads the same entries with
 * indexOf and slice in a fraction of that. Anything else (an escape, an
 * unknown field, another tool's layout, a duplicate or integer-like key,
 * a number in another form) returns null, and the general parser decides:
 * the fast path accepts only texts whose meaning it knows to be the same, so
 * both give equal entries (a test compares them on random manifests).
 */

const HEAD = '{\n  "entries": {';
const KEY = '\n    "';
const TYPE = '": {\n      "type": "';
const FILE_PATH = 'file",\n      "path": "';
const LINK_PATH = 'link",\n      "path": "';
const USER = '",\n      "user": "';
const SIZE = '",\n      "filesize": ';
const MTIME = ',\n      "mtime": "';
const HASH = '",\n      "hash": "';
const REFERENCE = '",\n      "reference": "';
const END = '"\n    }';
const ENTRIES_END = '\n  }';

/** A backslash (an escape) or a control character other than the newline: JSON.parse's business. */
// eslint-disable-next-line no-control-regex -- exactly the characters a JSON string cannot hold raw
const UNPLAIN = /[\\\u0000-\u0009\u000b-\u001f]/;
/** An array-index key: a plain object would list it first, out of file order. */
const INDEX_KEY = /^(?:0|[1-9][0-9]*)$/;

export interface CanonicalEntries {
  /** by path, in file order (a null-prototype object, as JSON.parse would give without one) */
  entries: Record<string, ManifestEntry>;
  /** the manifest without its entries: `{"entries": {}` + the text after them */
  tail: string;
}

/** The entries of `text` when it is in the canonical layout (see above), else null. */
export function canonicalEntries(text: string): CanonicalEntries | null {
  if (!text.startsWith(HEAD) || text.startsWith('}', HEAD.length)) return null;
  const entries = Object.create(null) as Record<string, ManifestEntry>;
  let structural = 0; // newlines the layout itself holds
  let i = HEAD.length;
  /** the plain string starting at i (after its opening quote); i moves to its closing quote */
  const str = (): string => {
    const j = text.indexOf('"', i);
    const s = j < 0 ? '' : text.slice(i, j);
    i = j < 0 ? text.length : j;
    return s;
  };
  const lit = (l: string): boolean => {
    if (!text.startsWith(l, i)) return false;
    i += l.length;
    return true;
  };
  for (;;) {
    if (!lit(KEY)) return null;
    const key = str();
    if (!lit(TYPE)) return null;
    let entry: ManifestEntry;
    if (lit(FILE_PATH)) {
      const path = str();
      if (!lit(USER)) return null;
      const user = str();
      if (!lit(SIZE)) return null;
      const j = text.indexOf(',', i);
      if (j < 0) return null;
      const digits = text.slice(i, j);
      i = j;
      if (!INDEX_KEY.test(digits)) return null;
      const filesize = Number(digits);
      if (!Number.isSafeInteger(filesize)) return null;
      if (!lit(MTIME)) return null;
      const mtime = str();
      if (!lit(HASH)) return null;
      const hash = str();
      if (!lit(END)) return null;
      entry = { type: 'file', path, user, filesize, mtime, hash };
      structural += 8;
    } else if (lit(LINK_PATH)) {
      const path = str();
      if (!lit(USER)) return null;
      const user = str();
      if (!lit(REFERENCE)) return null;
      const reference = str();
      if (!lit(END)) return null;
      entry = { type: 'link', path, user, reference };
      structural += 6;
    } else return null;
    if (entry.path !== key) return null;
    const c = key.charCodeAt(0);
    if (c >= 0x30 && c <= 0x39 && INDEX_KEY.test(key) && Number(key) < 2 ** 32 - 1) return null;
    if (entries[key] !== undefined) return null; // a duplicate: the general path refuses it by name
    entries[key] = entry;
    if (lit(',')) continue;
    if (text.startsWith(ENTRIES_END, i)) break;
    return null;
  }
  // Strings were cut at the next quote: right only if none holds an escape; and JSON
  // refuses raw control characters, a newline inside a string included (counted here).
  const region = text.slice(HEAD.length, i);
  if (UNPLAIN.test(region)) return null;
  let newlines = 0;
  for (let k = region.indexOf('\n'); k >= 0; k = region.indexOf('\n', k + 1)) newlines++;
  if (newlines !== structural) return null;
  return { entries, tail: `{"entries": {}${text.slice(i + ENTRIES_END.length)}` };
}
