import { mkdtemp, mkdir, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  assertSafeRelativePath,
  assertTransactionId,
  ConflictError,
  errorFromJSON,
  errorToJSON,
  isTransactionId,
  LockedError,
  newTransactionId,
  resolveBeneath,
  TransactionCommitError,
  ValidationError,
} from '../src/index.js';

describe('transaction ids', () => {
  it('are unique, valid and sort by time', () => {
    const a = newTransactionId(new Date('2026-01-01T00:00:00.000Z'));
    const b = newTransactionId(new Date('2026-01-01T00:00:00.001Z'));
    expect(isTransactionId(a)).toBe(true);
    expect(a < b).toBe(true);
    const many = new Set(Array.from({ length: 1000 }, () => newTransactionId()));
    expect(many.size).toBe(1000);
    expect(a).toMatch(/^[0-9A-Za-z_.:-]+$/); // valid in a ZFS dataset name
    expect(isTransactionId('../x')).toBe(false);
  });

  it('assertTransactionId refuses anything else with TX_ID', () => {
    expect(() => assertTransactionId(newTransactionId())).not.toThrow();
    for (const bad of ['../../x', '', '20261125T101112123Z-3f9a1c0']) {
      let e: unknown;
      try {
        assertTransactionId(bad);
      } catch (x) {
        e = x;
      }
      expect(e).toBeInstanceOf(ValidationError);
      expect(e).toMatchObject({ code: 'TX_ID', details: { field: 'transactionId' } });
    }
  });
});

describe('errors', () => {
  it('carry code and hint and survive the wire', () => {
    const e = new LockedError({ user: 'ana@example.org', host: 'h1', pid: 42, since: '2026-01-01T00:00:00Z' });
    expect(e.message).toContain('ana@example.org');
    const back = errorFromJSON(errorToJSON(e));
    expect(back).toBeInstanceOf(LockedError);
    expect((back as LockedError).holder.pid).toBe(42);
    const c = errorFromJSON(errorToJSON(new ConflictError(['a', 'b'])));
    expect((c as ConflictError).paths).toEqual(['a', 'b']);
    const v = errorFromJSON(errorToJSON(new ValidationError('bad hash', { path: 'a' }, { code: 'HASH_MISMATCH' })));
    expect(v).toBeInstanceOf(ValidationError);
    expect(v.code).toBe('HASH_MISMATCH');
    expect((v as ValidationError).details.path).toBe('a');
    const t = new TransactionCommitError('x', 'tx1');
    expect(t.recoveryHint).toBe('Check remote filesystem permissions and available space');
  });
});

describe('safe paths', () => {
  it.each(['', '/etc/passwd', '../x', 'a/../b', 'a/./b', 'a//b', 'a\0b', 'C:', 'C:/', 'C:/x', 'a\\b', 'x/'])(
    'refuses %j',
    (p) => {
      expect(() => assertSafeRelativePath(p)).toThrow(ValidationError);
    },
  );
  it('accepts ordinary relative paths', () => {
    expect(() => assertSafeRelativePath('input/a b/résumé.csv')).not.toThrow();
    expect(() => assertSafeRelativePath('c:notes.csv')).not.toThrow(); // a name, not a drive
  });
  it('refuses a path that escapes through a symlinked directory', async () => {
    const root = await mkdtemp(path.join(tmpdir(), 'dsg-safe-'));
    const outside = await mkdtemp(path.join(tmpdir(), 'dsg-out-'));
    await mkdir(path.join(root, 'input'));
    await symlink(outside, path.join(root, 'input', 'esc'));
    await symlink('.', path.join(root, 'input', 'here'));
    await expect(resolveBeneath(root, 'input/esc/x.txt')).rejects.toThrow(/is a symlink/);
    // one confinement for reads and writes: a link pointing inside is refused too
    await expect(resolveBeneath(root, 'input/here/x.txt')).rejects.toThrow(/is a symlink/);
    await expect(resolveBeneath(root, 'input/new/deeper/x.txt')).resolves.toBe(
      path.join(root, 'input/new/deeper/x.txt'),
    );
  });
});
