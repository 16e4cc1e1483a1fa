import { describe, expect, it } from 'vitest';
import {
  assertSnapshotMessage,
  ConfigError,
  MAX_SNAPSHOT_MESSAGE_BYTES,
  snapshotMessageProblem,
  ValidationError,
} from '../src/index.js';

/** What the ZFS backend does to a message in `dsg:pending` (JSON, then percent-encoding of % \t \n \r \0). */
function pendingBytes(message: string): number {
  const json = JSON.stringify({
    pattern: 'sync',
    snapshot: {
      snapshotId: 's999999999',
      message,
      manifestHash: 'f'.repeat(16),
      user: 'someone.with.a.long.name@example.org',
      createdAt: '2026-12-01T10:11:12-08:00',
    },
  });
  return Buffer.byteLength(json.replace(/[%\t\n\r\0]/g, '%xx'), 'utf8');
}

describe('assertSnapshotMessage', () => {
  it('accepts ordinary messages, newlines, tabs, non-ASCII and exactly the limit', () => {
    for (const m of [
      'sync',
      '',
      'line 1\n\tline 2',
      'données 数据 🚀',
      'a'.repeat(MAX_SNAPSHOT_MESSAGE_BYTES),
      'é'.repeat(MAX_SNAPSHOT_MESSAGE_BYTES / 2),
    ]) {
      expect(() => assertSnapshotMessage(m)).not.toThrow();
      expect(snapshotMessageProblem(m)).toBeNull();
    }
  });

  it('refuses one byte over the limit, counting UTF-8 bytes, with a ConfigError naming the field and the limit', () => {
    for (const m of [
      'a'.repeat(MAX_SNAPSHOT_MESSAGE_BYTES + 1),
      'é'.repeat(MAX_SNAPSHOT_MESSAGE_BYTES / 2 + 1),
      'x'.repeat(10_000_000),
    ]) {
      let err: unknown;
      try {
        assertSnapshotMessage(m);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigError);
      expect(err).toBeInstanceOf(ValidationError);
      const v = err as ConfigError;
      expect(v.details.field).toBe('message');
      expect(v.message).toContain(`${Buffer.byteLength(m)} bytes`);
      expect(v.message.length).toBeLessThan(200); // never echoes the message
      expect(v.recoveryHint).toContain(String(MAX_SNAPSHOT_MESSAGE_BYTES));
    }
  });

  it('refuses control characters other than newline and tab, and lone surrogates', () => {
    expect(snapshotMessageProblem('red \u001b[31m text')).toMatch(/U\+001B at character 5/);
    expect(snapshotMessageProblem('a\rb')).toMatch(/U\+000D/);
    expect(snapshotMessageProblem('a\0b')).toMatch(/U\+0000/);
    expect(snapshotMessageProblem('a\u009bb')).toMatch(/U\+009B/);
    expect(snapshotMessageProblem('a\u007f')).toMatch(/U\+007F/);
    expect(snapshotMessageProblem('x\ud800y')).toMatch(/not valid Unicode/);
    expect(snapshotMessageProblem('x\udc00')).toMatch(/not valid Unicode/);
    expect(() => assertSnapshotMessage('a\u001bb')).toThrow(ConfigError);
  });

  it('every accepted message fits a ZFS user property (at most 8191 bytes) even in its worst encoding', () => {
    const worst = [
      '%'.repeat(MAX_SNAPSHOT_MESSAGE_BYTES),
      '"'.repeat(MAX_SNAPSHOT_MESSAGE_BYTES),
      '\n'.repeat(MAX_SNAPSHOT_MESSAGE_BYTES),
      '\\'.repeat(MAX_SNAPSHOT_MESSAGE_BYTES),
      '🚀'.repeat(MAX_SNAPSHOT_MESSAGE_BYTES / 4),
    ];
    for (const m of worst) {
      expect(snapshotMessageProblem(m)).toBeNull();
      expect(pendingBytes(m)).toBeLessThanOrEqual(8191);
    }
  });
});
