/**
 * JSON output in the ancestor's layout (orjson OPT_INDENT_2: 2-space indent,
 * `": "` after keys, non-ASCII as-is, no trailing newline) with an explicit
 * key order. Hand-written rather than JSON.stringify(obj, null, 2) because a
 * plain object would move integer-like keys (e.g. a path "2024") to the front.
 */
export type Ordered = readonly (readonly [string, unknown])[];

/** Marks an object whose keys are written in the given order. */
export class OrderedObject {
  constructor(readonly pairs: Ordered) {}
}

/** Already-serialized JSON, inserted as-is (the caller did the indentation). */
export class RawJson {
  constructor(readonly text: string) {}
}

export function pretty(v: unknown, indent = ''): string {
  if (v instanceof RawJson) return v.text;
  if (v instanceof OrderedObject) return prettyPairs(v.pairs, indent);
  if (Array.isArray(v)) {
    if (v.length === 0) return '[]';
    const inner = indent + '  ';
    return `[\n${v.map((x: unknown) => inner + pretty(x, inner)).join(',\n')}\n${indent}]`;
  }
  if (v !== null && typeof v === 'object') return prettyPairs(Object.entries(v), indent);
  return JSON.stringify(v ?? null);
}

function prettyPairs(pairs: Ordered, indent: string): string {
  if (pairs.length === 0) return '{}';
  const inner = indent + '  ';
  const body = pairs.map(([k, x]) => `${inner}${JSON.stringify(k)}: ${pretty(x, inner)}`).join(',\n');
  return `{\n${body}\n${indent}}`;
}

/** Compact JSON (no spaces) with keys in the given order — orjson.dumps default layout. */
export function compactPairs(pairs: Ordered): string {
  return `{${pairs.map(([k, x]) => `${JSON.stringify(k)}:${compact(x)}`).join(',')}}`;
}

export function compact(v: unknown): string {
  if (v instanceof OrderedObject) return compactPairs(v.pairs);
  if (Array.isArray(v)) return `[${v.map((x: unknown) => compact(x)).join(',')}]`;
  if (v !== null && typeof v === 'object') return compactPairs(Object.entries(v));
  return JSON.stringify(v ?? null);
}

/** Compact JSON with object keys sorted recursively (snapshot_hash's project_config). */
export function compactSorted(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map((x: unknown) => compactSorted(x)).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const keys = Object.keys(v).sort();
    const o = v as Record<string, unknown>;
    return `{${keys.map((k) => `${JSON.stringify(k)}:${compactSorted(o[k])}`).join(',')}}`;
  }
  return JSON.stringify(v ?? null);
}

/**
 * Whether `text` (valid JSON) holds a duplicated object key, given `value`,
 * what JSON.parse made of it. JSON.parse keeps one property per distinct key,
 * so an object whose text names more keys than its parsed value has holds a
 * duplicate. Counting needs no set of the keys seen: on a manifest of a
 * million entries that set and its key strings were ~70 MB. Keys are cut
 * out of the text only where their value is an object or array (to find the
 * parsed child). Once true, findDuplicateKey names the key.
 */
export function hasDuplicateKey(text: string, value: unknown): boolean {
  type Frame =
    | { obj: true; parsed: object | undefined; count: number; expectKey: boolean; keyAt: number; keyEnd: number }
    | { obj: false; parsed: unknown[] | undefined; index: number };
  const stack: Frame[] = [];
  const n = text.length;
  let i = 0;
  while (i < n) {
    const ch = text.charCodeAt(i);
    if (ch === 0x22 /* " */) {
      const j = stringEnd(text, i);
      const top = stack[stack.length - 1];
      if (top?.obj && top.expectKey) {
        top.count++;
        top.keyAt = i + 1;
        top.keyEnd = j;
        top.expectKey = false;
      }
      i = j + 1;
      continue;
    }
    if (ch === 0x7b /* { */ || ch === 0x5b /* [ */) {
      const top = stack[stack.length - 1];
      let child: unknown;
      if (!top) child = value;
      else if (top.obj) {
        const raw = text.slice(top.keyAt, top.keyEnd);
        const key = raw.includes('\\') ? (JSON.parse(`"${raw}"`) as string) : raw;
        child = top.parsed && Object.hasOwn(top.parsed, key) ? (top.parsed as Record<string, unknown>)[key] : undefined;
      } else child = top.parsed?.[top.index];
      if (ch === 0x7b) {
        const parsed = typeof child === 'object' && child !== null && !Array.isArray(child) ? child : undefined;
        stack.push({ obj: true, parsed, count: 0, expectKey: true, keyAt: 0, keyEnd: 0 });
      } else stack.push({ obj: false, parsed: Array.isArray(child) ? (child as unknown[]) : undefined, index: 0 });
    } else if (ch === 0x7d /* } */) {
      const f = stack.pop();
      // no parsed object to compare with: a duplicate above already took this one's place
      if (f?.obj && (f.parsed === undefined || Object.keys(f.parsed).length !== f.count)) return true;
    } else if (ch === 0x5d /* ] */) stack.pop();
    else if (ch === 0x2c /* , */) {
      const top = stack[stack.length - 1];
      if (top?.obj) top.expectKey = true;
      else if (top) top.index++;
    }
    i++;
  }
  return false;
}

/** Up to this many keys an object's keys are searched in an array. */
const SMALL_OBJECT = 16;

/**
 * The first duplicated object key in already-valid JSON text, as a path of
 * keys, or null. JSON.parse silently keeps the last duplicate; a manifest
 * with two entries for one path must be refused instead.
 */
export function findDuplicateKey(text: string): string[] | null {
  // Keys of small objects (every entry) are looked up in an array; a Set only
  // for big ones (the entries object): a Set per entry was most of this scan's garbage.
  type Frame =
    | { kind: 'obj'; keys: string[]; set: Set<string> | null; expectKey: boolean; current: string }
    | { kind: 'arr'; index: number };
  const stack: Frame[] = [];
  const n = text.length;
  let i = 0;
  while (i < n) {
    const ch = text.charCodeAt(i);
    if (ch === 0x22 /* " */) {
      const j = stringEnd(text, i);
      const top = stack[stack.length - 1];
      if (top?.kind === 'obj' && top.expectKey) {
        const rawKey = text.slice(i + 1, j);
        const key = rawKey.includes('\\') ? (JSON.parse(`"${rawKey}"`) as string) : rawKey;
        if (top.set ? top.set.has(key) : top.keys.includes(key)) {
          return [...stack.slice(0, -1).map((f) => (f.kind === 'obj' ? f.current : String(f.index))), key];
        }
        if (top.set) top.set.add(key);
        else if (top.keys.length < SMALL_OBJECT) top.keys.push(key);
        else {
          top.set = new Set(top.keys);
          top.set.add(key);
          top.keys = [];
        }
        top.current = key;
        top.expectKey = false;
      }
      i = j + 1;
      continue;
    }
    if (ch === 0x7b /* { */) stack.push({ kind: 'obj', keys: [], set: null, expectKey: true, current: '' });
    else if (ch === 0x5b /* [ */) stack.push({ kind: 'arr', index: 0 });
    else if (ch === 0x7d || ch === 0x5d) stack.pop();
    else if (ch === 0x2c /* , */) {
      const top = stack[stack.length - 1];
      if (top?.kind === 'obj') top.expectKey = true;
      else if (top?.kind === 'arr') top.index++;
    }
    i++;
  }
  return null;
}

/** Where the JSON string opened at `i` ends: the next quote not preceded by an odd run of backslashes. */
function stringEnd(text: string, i: number): number {
  let j = text.indexOf('"', i + 1);
  for (;;) {
    let k = j - 1;
    while (text.charCodeAt(k) === 0x5c) k--;
    if ((j - 1 - k) % 2 === 0) return j;
    j = text.indexOf('"', j + 1);
  }
}
