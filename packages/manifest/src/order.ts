/**
 * Byte-wise order of the UTF-8 encodings (spec: entries sorted by path,
 * byte-wise). Comparing code points gives the same order as comparing UTF-8
 * bytes; JS `<` compares UTF-16 units, which differs above U+FFFF.
 */
export function comparePaths(a: string, b: string): number {
  if (a === b) return 0;
  const ia = a[Symbol.iterator]();
  const ib = b[Symbol.iterator]();
  for (;;) {
    const x = ia.next();
    const y = ib.next();
    if (x.done) return y.done ? 0 : -1;
    if (y.done) return 1;
    const cx = x.value.codePointAt(0) ?? 0;
    const cy = y.value.codePointAt(0) ?? 0;
    if (cx !== cy) return cx < cy ? -1 : 1;
  }
}
