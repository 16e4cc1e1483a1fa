import { randomBytes } from 'node:crypto';
import { ValidationError } from './errors.js';

/**
 * A transaction id: sortable by time, unique by 8 random hex digits, and a
 * valid component of a ZFS dataset name and a file name, e.g.
 * `20261125T101112123Z-3f9a1c0e`.
 */
export type TransactionId = string & { readonly __brand: 'TransactionId' };

const TX_RE = /^\d{8}T\d{9}Z-[0-9a-f]{8}$/;

export function newTransactionId(now: Date = new Date()): TransactionId {
  const iso = now.toISOString(); // 2026-11-25T10:11:12.123Z
  const stamp = iso.slice(0, 23).replace(/[-:.]/g, '') + 'Z';
  return `${stamp}-${randomBytes(4).toString('hex')}` as TransactionId;
}

export function isTransactionId(value: string): value is TransactionId {
  return TX_RE.test(value);
}

/** Parse untrusted input (wire, file names) into a TransactionId or throw. */
export function asTransactionId(id: string): TransactionId {
  if (!isTransactionId(id)) throw new TypeError(`not a transaction id: ${JSON.stringify(id)}`);
  return id;
}

/**
 * The backends' check of a transaction id from a caller (wire, API):
 * ValidationError (code TX_ID, field transactionId) otherwise — before the
 * id names any directory or dataset.
 */
export function assertTransactionId(tx: string): asserts tx is TransactionId {
  if (!isTransactionId(tx)) {
    throw new ValidationError(
      `not a transaction id: ${JSON.stringify(String(tx).slice(0, 100))}`,
      { field: 'transactionId' },
      {
        code: 'TX_ID',
        recoveryHint: 'Use an id made by newTransactionId().',
      },
    );
  }
}
