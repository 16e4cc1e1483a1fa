/**
 * Byte-wise order of the UTF-8 encodings (the order of the entries dsg
 * writes). UTF-8 byte order equals code point order; JS `<` compares
 * UTF-16 units, which differs only where a surrogate (a code point above
 * U+FFFF) meets a unit in U+E000–U+FFFF. Remapping the units so surrogates
 * sort last gives code point order without decoding.
 */
export function rank(u: number): number {
  if (u < 0xd800) return u;
  return u <= 0xdfff ? u + 0x2000 : u - 0x800;
}

export function comparePaths(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return rank(x) < rank(y) ? -1 : 1;
  }
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}
