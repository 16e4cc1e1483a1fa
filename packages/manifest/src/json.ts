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
      // end of the string: the next quote not preceded by an odd run of backslashes
      let j = text.indexOf('"', i + 1);
      for (;;) {
        let k = j - 1;
        while (text.charCodeAt(k) === 0x5c) k--;
        if ((j - 1 - k) % 2 === 0) break;
        j = text.indexOf('"', j + 1);
      }
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
