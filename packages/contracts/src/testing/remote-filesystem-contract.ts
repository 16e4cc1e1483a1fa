/**
 * The executable contract of `RemoteFilesystem`: one vitest suite every
 * implementation runs (posix, flat, ZFS, the agent client over the wire,
 * test fakes). It pins ONE error class and code per contract violation
 * (`CONTRACT_ERRORS`), so a caller can branch on them whatever backend is
 * behind the interface.
 *
 * Only tests import this module (`@dsg/contracts/testing`); it needs vitest,
 * which the runtime of contracts does not.
 */
import { lstat, readdir, readlink } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LAST_SYNC } from '../dsg-layout.js';
import { DsgError, NotFoundError, ValidationError, type ErrorCode } from '../errors.js';
import type { ByteStream, RemoteFilesystem, SnapshotInfo } from '../interfaces.js';
import { newTransactionId, type TransactionId } from '../transaction-id.js';

export interface RemoteFilesystemFixture {
  /** the implementation under test, on a repository that does not exist yet */
  readonly fs: RemoteFilesystem;
  /** the content hash the implementation verifies uploads with */
  hash(data: Uint8Array): string;
  /**
   * Everything the implementation keeps for this repository (files, datasets),
   * one sorted line each: a refused write must leave it as it was.
   */
  residue(): Promise<string[]>;
  /**
   * Whether several transactions may be open at once (posix: yes; ZFS: one
   * at a time, a second begin is refused with `anotherTransactionOpen`).
   */
  readonly concurrentTransactions: boolean;
  /** Whether files of snapshots before the head stay readable (the flat layout keeps only the head). */
  readonly snapshotHistory: boolean;
  /** Whether it implements the optional `repositoryLayout()` (flat and ZFS do; the posix snapshot layout, the agent client and fakes do not). */
  readonly reportsLayout: boolean;
  /**
   * The residue() lines that are parked content (kept by a rollback for the
   * next transaction, see `parkedContent`): the one trace a rollback leaves.
   */
  isParked(line: string): boolean;
  cleanup(): Promise<void>;
}

type ErrorClass = abstract new (...args: never[]) => DsgError;

/** The one error class and code of each contract violation, in every implementation. */
export const CONTRACT_ERRORS = {
  /** write, link, delete or commit in a transaction that is not open (never begun, committed, rolled back) */
  unknownTransaction: { class: NotFoundError, code: 'NOT_FOUND' },
  /** begin of a transaction id that is already open */
  transactionAlreadyOpen: { class: ValidationError, code: 'TX_EXISTS' },
  /** begin while another transaction is open, in an implementation that allows one at a time */
  anotherTransactionOpen: { class: DsgError, code: 'TX_STATE' },
  /** upload whose bytes do not hash (or size) to what the caller promised */
  hashMismatch: { class: ValidationError, code: 'HASH_MISMATCH' },
  /** a path that is absolute, climbs out, or is otherwise not a clean relative path */
  unsafePath: { class: ValidationError, code: 'VALIDATION' },
  /** a link whose target is absolute or leaves the repository */
  unsafeLinkTarget: { class: ValidationError, code: 'VALIDATION' },
  /** readSnapshotFile of a snapshot that was never committed */
  unknownSnapshot: { class: NotFoundError, code: 'NOT_FOUND' },
  /** copyFile from a path the work area does not hold (never there, or deleted in this transaction) */
  copySourceMissing: { class: NotFoundError, code: 'NOT_FOUND' },
  /** copyFile from a link, a directory or a special file */
  copySourceNotAFile: { class: ValidationError, code: 'VALIDATION' },
} as const satisfies Record<string, { class: ErrorClass; code: ErrorCode }>;

export type ContractViolation = keyof typeof CONTRACT_ERRORS;

/** A rejection that must be exactly the pinned error: same class (by name, so a subclass does not pass) and code. */
export async function expectViolation(p: Promise<unknown>, violation: ContractViolation): Promise<DsgError> {
  const want = CONTRACT_ERRORS[violation];
  const got: unknown = await p.then(
    () => new Error(`expected ${violation} (${want.class.name} ${want.code}), but it succeeded`),
    (e: unknown) => e,
  );
  if (!(got instanceof DsgError)) throw got instanceof Error ? got : new Error(String(got));
  expect({ class: got.name, code: got.code }, got.message).toEqual({ class: want.class.name, code: want.code });
  expect(got).toBeInstanceOf(want.class);
  return got;
}

/** Every entry under dir as `path kind[ size|-> target]`, sorted: a residue() for directory-based fixtures. */
export async function treeLines(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    let names: string[];
    try {
      names = await readdir(d);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw e;
    }
    for (const n of names) {
      const full = path.join(d, n);
      const rel = path.relative(dir, full);
      const st = await lstat(full);
      if (st.isSymbolicLink()) out.push(`${rel} -> ${await readlink(full)}`);
      else if (st.isDirectory()) {
        out.push(`${rel}/`);
        await walk(full);
      } else out.push(`${rel} ${st.size}`);
    }
  };
  await walk(dir);
  return out.sort();
}

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

async function* streamOf(data: Uint8Array, chunk = 5): ByteStream {
  for (let i = 0; i < data.length; i += chunk) {
    await Promise.resolve(); // a real async source, like the network
    yield data.subarray(i, Math.min(data.length, i + chunk));
  }
  if (data.length === 0) await Promise.resolve();
}

async function textOf(s: ByteStream | null): Promise<string | null> {
  if (s === null) return null;
  const parts: Uint8Array[] = [];
  for await (const c of s) parts.push(c);
  return Buffer.concat(parts).toString('utf8');
}

function info(n: number): SnapshotInfo {
  return {
    snapshotId: `s${n}`,
    message: `contract s${n}`,
    manifestHash: `h${n}`,
    user: 'contract@example.org',
    createdAt: '2026-01-01T00:00:00Z',
  };
}

/**
 * The head manifest a commit carries (the flat layout and the original's ZFS
 * datasets read the head from it, so every transaction writes one).
 */
function headManifest(n: number): Uint8Array {
  const s = info(n);
  return enc(
    JSON.stringify({
      entries: {},
      metadata: {
        manifest_version: '0.4.4',
        snapshot_id: s.snapshotId,
        created_at: s.createdAt,
        entry_count: 0,
        entries_hash: '',
        created_by: s.user,
        snapshot_message: s.message,
        snapshot_previous: n > 1 ? `s${n - 1}` : null,
        snapshot_hash: s.manifestHash,
        snapshot_notes: n > 1 ? 'sync' : 'init',
      },
    }),
  );
}

/**
 * Registers the contract's tests for one implementation. `make` gives a
 * fresh fixture per test (a repository that does not exist yet).
 */
export function remoteFilesystemContract(name: string, make: () => Promise<RemoteFilesystemFixture>): void {
  describe(`RemoteFilesystem contract: ${name}`, () => {
    let f: RemoteFilesystemFixture;
    let fs: RemoteFilesystem;
    beforeEach(async () => {
      f = await make();
      fs = f.fs;
    });
    afterEach(async () => {
      await f.cleanup();
    });

    const put = async (tx: TransactionId, p: string, content: string): Promise<void> => {
      const b = enc(content);
      expect(await fs.writeFile(tx, p, streamOf(b), { hash: f.hash(b), size: b.length })).toEqual({ size: b.length });
    };
    /** Begin, write files (null deletes), the head manifest, commit as sN. */
    const snapshot = async (n: number, files: Record<string, string | null>): Promise<TransactionId> => {
      const tx = newTransactionId();
      expect((await fs.begin(tx)).pattern).toBe(n === 1 ? 'init' : 'sync');
      for (const [p, c] of Object.entries(files)) {
        if (c === null) await fs.deleteFile(tx, p);
        else await put(tx, p, c);
      }
      const m = headManifest(n);
      await fs.writeFile(tx, LAST_SYNC, streamOf(m, 4096), { hash: f.hash(m), size: m.length });
      await fs.commit(tx, info(n));
      return tx;
    };
    const read = async (p: string): Promise<string | null> => textOf(await fs.readFile(p));
    /** The snapshot list; an implementation without history (flat) lists at least the head. */
    const expectSnapshots = async (ids: string[]): Promise<void> => {
      const got = (await fs.listSnapshots()).map((s) => s.snapshotId);
      if (f.snapshotHistory) expect(got).toEqual(ids);
      else expect(got.at(-1)).toBe(ids.at(-1));
    };

    it('a repository that does not exist: exists() is false, no snapshots, a missing file is null', async () => {
      expect(await fs.exists()).toBe(false);
      expect(await fs.listSnapshots()).toEqual([]);
      expect(await fs.readFile('a.txt')).toBeNull();
    });

    it('repositoryLayout: null before the first snapshot and a layout name after where implemented, absent where the fixture says so', async () => {
      // optional in the interface: the fixture declares which, so a backend that loses or gains it fails here
      if (!f.reportsLayout) {
        expect('repositoryLayout' in fs && typeof fs.repositoryLayout).not.toBe('function');
        return;
      }
      expect(typeof fs.repositoryLayout).toBe('function');
      expect(await fs.repositoryLayout!()).toBeNull();
      await snapshot(1, { 'input/a.txt': 'A' });
      expect(await fs.repositoryLayout!()).toMatch(/^(flat|legacy|dsg)$/);
    });

    it('init then sync: files and links appear at commit, deletes remove, history is listed oldest first', async () => {
      await snapshot(1, { 'input/a.txt': 'A1', 'input/b.txt': 'B' });
      expect(await fs.exists()).toBe(true);
      expect(await read('input/a.txt')).toBe('A1');

      const tx = newTransactionId();
      expect((await fs.begin(tx)).pattern).toBe('sync');
      await put(tx, 'input/a.txt', 'A2');
      await fs.deleteFile(tx, 'input/b.txt');
      await fs.writeLink(tx, 'input/to-a', 'a.txt'); // (readFile is for files; a link is not read through it)
      // nothing of an open transaction is visible before its commit
      expect(await read('input/a.txt')).toBe('A1');
      expect(await read('input/b.txt')).toBe('B');
      const m = headManifest(2);
      await fs.writeFile(tx, LAST_SYNC, streamOf(m), { hash: f.hash(m) });
      await fs.commit(tx, info(2));

      expect(await read('input/a.txt')).toBe('A2');
      expect(await fs.readFile('input/b.txt')).toBeNull();
      await expectSnapshots(['s1', 's2']);
      expect((await fs.listSnapshots()).at(-1)).toMatchObject({ snapshotId: 's2', message: 'contract s2' });
    });

    it('readSnapshotFile: a file as it was, null when absent there, NotFoundError for a snapshot never committed', async () => {
      await snapshot(1, { 'input/a.txt': 'A1' });
      await snapshot(2, { 'input/a.txt': 'A2', 'input/new.txt': 'N' });
      expect(await textOf(await fs.readSnapshotFile('s2', 'input/a.txt'))).toBe('A2');
      expect(await fs.readSnapshotFile('s2', 'input/missing.txt')).toBeNull();
      if (f.snapshotHistory) {
        expect(await textOf(await fs.readSnapshotFile('s1', 'input/a.txt'))).toBe('A1');
        expect(await fs.readSnapshotFile('s1', 'input/new.txt')).toBeNull();
      }
      await expectViolation(fs.readSnapshotFile('s9', 'input/a.txt'), 'unknownSnapshot');
    });

    it('deleteFile of a missing file is not an error', async () => {
      await snapshot(1, { 'input/a.txt': 'A' });
      const tx = newTransactionId();
      await fs.begin(tx);
      await fs.deleteFile(tx, 'input/never.txt');
      await fs.deleteFile(tx, 'nodir/never.txt');
      await fs.rollback(tx);
      expect(await read('input/a.txt')).toBe('A');
    });

    it('deleteFile removes a committed link, never its target', async () => {
      await snapshot(1, { 'input/a.txt': 'A' });
      const commitWith = async (n: number, step: (tx: TransactionId) => Promise<void>): Promise<void> => {
        const tx = newTransactionId();
        await fs.begin(tx);
        await step(tx);
        const m = headManifest(n);
        await fs.writeFile(tx, LAST_SYNC, streamOf(m), { hash: f.hash(m) });
        await fs.commit(tx, info(n));
      };
      await commitWith(2, (tx) => fs.writeLink(tx, 'input/l', 'a.txt'));
      await commitWith(3, (tx) => fs.deleteFile(tx, 'input/l'));
      expect(await fs.readFile('input/l')).toBeNull();
      expect(await read('input/a.txt')).toBe('A');
    });

    it('a transaction never begun: writes, links, deletes and commit are refused; rollback does not throw', async () => {
      await snapshot(1, { 'input/a.txt': 'A' });
      const before = await f.residue();
      const tx = newTransactionId();
      const b = enc('x');
      await expectViolation(fs.writeFile(tx, 'input/x', streamOf(b), { hash: f.hash(b) }), 'unknownTransaction');
      await expectViolation(fs.writeLink(tx, 'input/l', 'a.txt'), 'unknownTransaction');
      await expectViolation(fs.deleteFile(tx, 'input/a.txt'), 'unknownTransaction');
      await expectViolation(fs.commit(tx, info(2)), 'unknownTransaction');
      const report = await fs.rollback(tx);
      expect(report.leftovers).toEqual([]);
      expect(await f.residue()).toEqual(before);
      await expectSnapshots(['s1']);
    });

    it('a committed transaction cannot be reused: writes refused, rollback leaves the snapshot, a repeated commit makes nothing new', async () => {
      const tx = await snapshot(1, { 'input/a.txt': 'A' });
      const b = enc('x');
      await expectViolation(fs.writeFile(tx, 'input/x', streamOf(b), { hash: f.hash(b) }), 'unknownTransaction');
      await expectViolation(fs.writeLink(tx, 'input/l', 'a.txt'), 'unknownTransaction');
      await expectViolation(fs.deleteFile(tx, 'input/a.txt'), 'unknownTransaction');
      expect((await fs.rollback(tx)).leftovers).toEqual([]);
      expect(await read('input/a.txt')).toBe('A');
      // a repeated commit (its first reply lost) may report success again; it never makes another snapshot
      await fs
        .commit(tx, info(1))
        .catch((e: unknown) => expectViolation(Promise.reject(e as Error), 'unknownTransaction'));
      await expectViolation(fs.commit(tx, info(2)), 'unknownTransaction');
      await expectSnapshots(['s1']);
      expect(await read('input/a.txt')).toBe('A');
    });

    it('a rolled-back transaction cannot be reused, and its rollback left no trace but parked content', async () => {
      await snapshot(1, { 'input/a.txt': 'A' });
      const before = await f.residue();
      const tx = newTransactionId();
      await fs.begin(tx);
      await put(tx, 'input/a.txt', 'changed');
      await put(tx, 'input/new/deep.txt', 'N');
      await fs.writeLink(tx, 'input/l', 'a.txt');
      const report = await fs.rollback(tx);
      expect(report.leftovers).toEqual([]);
      const unparked = (lines: string[]): string[] => lines.filter((l) => !f.isParked(l));
      expect(unparked(await f.residue())).toEqual(unparked(before));
      const b = enc('x');
      await expectViolation(fs.writeFile(tx, 'input/x', streamOf(b), { hash: f.hash(b) }), 'unknownTransaction');
      await expectViolation(fs.deleteFile(tx, 'input/a.txt'), 'unknownTransaction');
      await expectViolation(fs.commit(tx, info(2)), 'unknownTransaction');
      expect((await fs.rollback(tx)).leftovers).toEqual([]); // twice is harmless
      expect(await read('input/a.txt')).toBe('A');
      expect(await read('input/new/deep.txt')).toBeNull();
      await expectSnapshots(['s1']);
    });

    it('begin of a transaction that is already open is refused, and the open one stays usable', async () => {
      await snapshot(1, { 'input/a.txt': 'A' });
      const tx = newTransactionId();
      await fs.begin(tx);
      await expectViolation(fs.begin(tx), 'transactionAlreadyOpen');
      await put(tx, 'input/a.txt', 'A2');
      const m = headManifest(2);
      await fs.writeFile(tx, LAST_SYNC, streamOf(m), { hash: f.hash(m) });
      await fs.commit(tx, info(2));
      expect(await read('input/a.txt')).toBe('A2');
    });

    it('several transactions: independent work areas, or a second begin refused with the first one intact', async () => {
      await snapshot(1, { 'input/a.txt': 'A' });
      const one = newTransactionId();
      const two = newTransactionId();
      await fs.begin(one);
      await put(one, 'input/one.txt', '1');
      if (f.concurrentTransactions) {
        await fs.begin(two);
        await put(two, 'input/two.txt', '2');
        expect((await fs.rollback(two)).leftovers).toEqual([]);
      } else {
        await expectViolation(fs.begin(two), 'anotherTransactionOpen');
        await expectViolation(fs.deleteFile(two, 'input/a.txt'), 'unknownTransaction');
      }
      const m = headManifest(2);
      await fs.writeFile(one, LAST_SYNC, streamOf(m), { hash: f.hash(m) });
      await fs.commit(one, info(2));
      expect(await read('input/one.txt')).toBe('1');
      expect(await fs.readFile('input/two.txt')).toBeNull();
      await expectSnapshots(['s1', 's2']);
    });

    it('hash or size mismatch: refused, and nothing of the upload is left (no file, no temp file)', async () => {
      await snapshot(1, { 'input/a.txt': 'A' });
      const tx = newTransactionId();
      await fs.begin(tx);
      const before = await f.residue();
      const b = enc('the real bytes');
      await expectViolation(
        fs.writeFile(tx, 'input/a.txt', streamOf(b), { hash: f.hash(enc('other bytes')) }),
        'hashMismatch',
      );
      await expectViolation(
        fs.writeFile(tx, 'input/fresh/new.txt', streamOf(b), { hash: f.hash(enc('other bytes')) }),
        'hashMismatch',
      );
      await expectViolation(
        fs.writeFile(tx, 'input/sized.txt', streamOf(b), { hash: f.hash(b), size: b.length + 1 }),
        'hashMismatch',
      );
      expect(await f.residue()).toEqual(before);
      const m = headManifest(2);
      await fs.writeFile(tx, LAST_SYNC, streamOf(m), { hash: f.hash(m) });
      await fs.commit(tx, info(2));
      expect(await read('input/a.txt')).toBe('A');
      expect(await fs.readFile('input/fresh/new.txt')).toBeNull();
      expect(await fs.readFile('input/sized.txt')).toBeNull();
    });

    it('copyFile: a file of the snapshot begun from, and one written in this transaction, copied inside the work area and verified', async () => {
      await snapshot(1, { 'input/a.txt': 'AAA', 'input/keep.txt': 'K' });
      const tx = newTransactionId();
      await fs.begin(tx);
      const a = enc('AAA');
      // a rename: copy, then delete the old name
      expect(await fs.copyFile(tx, 'input/a.txt', 'input/moved/a.txt', { hash: f.hash(a), size: 3 })).toEqual({
        size: 3,
      });
      await fs.deleteFile(tx, 'input/a.txt');
      await put(tx, 'output/new.txt', 'fresh');
      const n = enc('fresh');
      await fs.copyFile(tx, 'output/new.txt', 'output/twin.txt', {
        hash: f.hash(n),
        mtime: '2024-05-06T07:08:09.000Z',
      });
      const m = headManifest(2);
      await fs.writeFile(tx, LAST_SYNC, streamOf(m), { hash: f.hash(m) });
      await fs.commit(tx, info(2));
      expect(await read('input/moved/a.txt')).toBe('AAA');
      expect(await fs.readFile('input/a.txt')).toBeNull();
      expect(await read('output/new.txt')).toBe('fresh');
      expect(await read('output/twin.txt')).toBe('fresh');
      expect(await read('input/keep.txt')).toBe('K');
      if (f.snapshotHistory) expect(await textOf(await fs.readSnapshotFile('s1', 'input/a.txt'))).toBe('AAA');
    });

    it('copyFile refuses a missing or deleted source, a link, other content and unsafe paths, and leaves nothing', async () => {
      await snapshot(1, { 'input/a.txt': 'A', 'input/gone.txt': 'G', 'input/dir/x.txt': 'X' });
      const tx = newTransactionId();
      await fs.begin(tx);
      await fs.writeLink(tx, 'input/link', 'a.txt');
      await fs.deleteFile(tx, 'input/gone.txt');
      const before = await f.residue();
      const a = enc('A');
      await expectViolation(fs.copyFile(tx, 'input/none.txt', 'input/b.txt', { hash: f.hash(a) }), 'copySourceMissing');
      await expectViolation(
        fs.copyFile(tx, 'input/gone.txt', 'input/b.txt', { hash: f.hash(enc('G')) }),
        'copySourceMissing',
      );
      await expectViolation(fs.copyFile(tx, 'input/link', 'input/b.txt', { hash: f.hash(a) }), 'copySourceNotAFile');
      await expectViolation(fs.copyFile(tx, 'input/dir', 'input/b.txt', { hash: f.hash(a) }), 'copySourceNotAFile');
      await expectViolation(fs.copyFile(tx, 'input/a.txt', 'input/b.txt', { hash: f.hash(enc('B')) }), 'hashMismatch');
      await expectViolation(
        fs.copyFile(tx, 'input/a.txt', 'input/b.txt', { hash: f.hash(a), size: 2 }),
        'hashMismatch',
      );
      for (const p of ['../escape.txt', '/etc/passwd', 'input/../../x', '']) {
        await expectViolation(fs.copyFile(tx, p, 'input/b.txt', { hash: f.hash(a) }), 'unsafePath');
        await expectViolation(fs.copyFile(tx, 'input/a.txt', p, { hash: f.hash(a) }), 'unsafePath');
      }
      expect(await f.residue()).toEqual(before);
      expect((await fs.rollback(tx)).leftovers).toEqual([]);
      await expectViolation(fs.copyFile(tx, 'input/a.txt', 'input/b.txt', { hash: f.hash(a) }), 'unknownTransaction');
    });

    it('parked content: the uploads of a rolled-back transaction are placed by the next one without being sent, then dropped', async () => {
      await snapshot(1, { 'input/a.txt': 'A' });
      const big = enc('the bytes of an upload that was interrupted'.repeat(100));
      const small = enc('small one');
      const one = newTransactionId();
      await fs.begin(one);
      await fs.writeFile(one, 'input/big.bin', streamOf(big, 1000), { hash: f.hash(big), size: big.length });
      await fs.writeFile(one, 'input/small.txt', streamOf(small), { hash: f.hash(small) });
      await expectViolation(fs.writeFile(one, 'input/bad.bin', streamOf(small), { hash: f.hash(big) }), 'hashMismatch');
      expect((await fs.rollback(one)).leftovers).toEqual([]);
      const parked = await fs.parkedContent();
      expect(parked).toContain(f.hash(big));
      expect(parked).toContain(f.hash(small));
      expect(await fs.readFile('input/big.bin')).toBeNull(); // parked is not in any snapshot

      const two = newTransactionId();
      await fs.begin(two);
      expect(await fs.copyParked(two, 'input/moved/big.bin', { hash: f.hash(big), size: big.length })).toEqual({
        size: big.length,
      });
      const other = enc('never uploaded');
      await expectViolation(fs.copyParked(two, 'input/c.bin', { hash: f.hash(other) }), 'copySourceMissing');
      await expectViolation(
        fs.copyParked(two, 'input/c.bin', { hash: f.hash(big), size: big.length + 1 }),
        'hashMismatch',
      );
      await expectViolation(fs.copyParked(two, '../escape', { hash: f.hash(big) }), 'unsafePath');
      const m = headManifest(2);
      await fs.writeFile(two, LAST_SYNC, streamOf(m), { hash: f.hash(m) });
      await fs.commit(two, info(2));
      expect(await textOf(await fs.readFile('input/moved/big.bin'))).toBe(Buffer.from(big).toString('utf8'));
      expect(await fs.readFile('input/c.bin')).toBeNull();
      const after = await fs.parkedContent();
      expect(after).not.toContain(f.hash(big)); // stored by the commit: no longer parked
      expect(after).toContain(f.hash(small)); // not used: kept until it expires
    });

    it('unsafe link targets are refused and nothing is created', async () => {
      await snapshot(1, { 'input/a.txt': 'A' });
      const tx = newTransactionId();
      await fs.begin(tx);
      const before = await f.residue();
      await expectViolation(fs.writeLink(tx, 'input/abs', '/etc/passwd'), 'unsafeLinkTarget');
      await expectViolation(fs.writeLink(tx, 'input/up', '../../outside'), 'unsafeLinkTarget');
      await expectViolation(fs.writeLink(tx, 'top', '..'), 'unsafeLinkTarget');
      expect(await f.residue()).toEqual(before);
      expect((await fs.rollback(tx)).leftovers).toEqual([]);
    });

    it('unsafe paths are refused in every operation', async () => {
      await snapshot(1, { 'input/a.txt': 'A' });
      const tx = newTransactionId();
      await fs.begin(tx);
      const before = await f.residue();
      const b = enc('x');
      for (const p of ['../escape.txt', '/etc/passwd', 'input/../../x', '']) {
        await expectViolation(fs.writeFile(tx, p, streamOf(b), { hash: f.hash(b) }), 'unsafePath');
        await expectViolation(fs.writeLink(tx, p, 'a.txt'), 'unsafePath');
        await expectViolation(fs.deleteFile(tx, p), 'unsafePath');
        await expectViolation(fs.readFile(p), 'unsafePath');
      }
      expect(await f.residue()).toEqual(before);
      expect((await fs.rollback(tx)).leftovers).toEqual([]);
    });

    it('recover() on a clean repository changes nothing', async () => {
      await snapshot(1, { 'input/a.txt': 'A' });
      const before = await f.residue();
      const r = await fs.recover();
      expect(r.transactions).toEqual([]);
      expect(r.leftovers).toEqual([]);
      expect(await f.residue()).toEqual(before);
    });
  });
}
