import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { DsgError, ERROR_CODES, ValidationError, errorFromJSON, errorToJSON, isErrorCode } from '../src/index.js';

describe('ErrorCode', () => {
  it('the README documents every code', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    const table = readme.slice(readme.indexOf('| code | meaning |')).split('\n\n')[0]!;
    const documented = [...table.matchAll(/^\| `([A-Z_]+)` \| /gm)].map((m) => m[1]);
    expect(documented.sort()).toEqual(Object.keys(ERROR_CODES).sort());
  });

  it('isErrorCode knows the codes and nothing else', () => {
    expect(isErrorCode('HASH_MISMATCH')).toBe(true);
    expect(isErrorCode('toString')).toBe(false);
    expect(isErrorCode('hash_mismatch')).toBe(false);
  });

  it('a code from the wire this build does not know is passed on unchanged', () => {
    const e = errorFromJSON({ name: 'DsgError', code: 'FROM_A_NEWER_AGENT', message: 'm', recoveryHint: 'h' });
    expect(e).toBeInstanceOf(DsgError);
    expect(e.code).toBe('FROM_A_NEWER_AGENT');
    const v = errorFromJSON(errorToJSON(new ValidationError('exists', {}, { code: 'TX_EXISTS' })));
    expect(v).toBeInstanceOf(ValidationError);
    expect(v.code).toBe('TX_EXISTS');
  });
});
