import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { componentProblem, validateComponent } from '../src/names.js';

// validateComponent answers plain ASCII names without the per-character rule; it must
// give exactly componentProblem's answer (the full rule) for every name.
const units = [
  ...Array.from({ length: 0x80 }, (_, i) => String.fromCharCode(i)), // every ASCII character, controls included
  'é',
  'e\u0301',
  '\u00a0',
  '\u200b',
  '漢',
  '😀',
  '\ud800',
];
const edge = [
  '',
  '.',
  '..',
  '...',
  ' ',
  '~',
  'a~',
  '~a',
  ' a',
  'a ',
  'con',
  'CON',
  'con.txt',
  'Con.tar.gz',
  'conx',
  'com1',
  'COM9.log',
  'lpt1',
  'lpt0',
  'aux.',
  '.aux',
  'nul',
  'prn.x',
  'x'.repeat(255),
  'x'.repeat(256),
  'a.b',
  'c:notes.csv',
  'back\\slash',
  'tab\tname',
  'del\u007f',
];

describe('validateComponent fast path', () => {
  it('agrees with the full rule on edge names', () => {
    for (const c of edge) expect(validateComponent(c), JSON.stringify(c)).toBe(componentProblem(c));
  });

  it('agrees with the full rule on random names', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ unit: fc.constantFrom(...units), maxLength: 12 }),
          fc.string({
            unit: fc.constantFrom('a', 'c', 'o', 'n', 'm', '1', '.', ' ', '~', 'L', 'P', 'T'),
            maxLength: 8,
          }),
          fc.string({ unit: fc.constantFrom('a', 'b'), minLength: 250, maxLength: 260 }),
        ),
        (c) => validateComponent(c) === componentProblem(c),
      ),
      { numRuns: 20000 },
    );
  });
});
