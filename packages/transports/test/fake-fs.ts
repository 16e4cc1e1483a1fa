// A minimal RemoteFilesystem over a temp directory: the LOWER component,
// faked only to test the protocol layer above it. The real backends
// (posix-ops) are used by the integration tests.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import {
  cp,
  lstat,
  mkdir,
  open,
  readFile,
  readdir,
  rename,
  rm,
  stat,
  symlink,
  unlink,
  writeFile,
} from 'node:fs/promises';
import { dirname, join } from 'node:path';
import {
  NotFoundError,
  ValidationError,
  parkedName,
  assertSafeLinkTarget,
  assertSafeRelativePath,
  snapshotNumber,
  type BeginResult,
  type ByteStream,
  type CleanupReport,
  type ExpectedFile,
  type HasherFactory,
  type RecoveryReport,
  type RemoteFilesystem,
  type SnapshotInfo,
  type SnapshotRef,
  type TransactionId,
} from '@dsg/contracts';

/** sha256 cut to 16 hex digits: any consistent hash serves the protocol tests. */
export const testHasher: HasherFactory = () => {
  const h = createHash('sha256');
  return { update: (c) => void h.update(c), digest: () => h.digest('hex').slice(0, 16) };
};

/**
 * Keeps the RemoteFilesystem contract (packages/contracts testing suite) in
 * everything but the lexical path and link gates: those are off unless
 * `gates` is set, because the protocol tests prove that the AGENT refuses
 * such requests before any backend sees them, and a fake that refused too
 * would hide an agent that did not.
 */
export class FakeRemoteFilesystem implements RemoteFilesystem {
  private readonly open = new Set<string>();
  constructor(
    readonly root: string,
    private readonly o: { gates?: boolean } = {},
  ) {}
  work(tx: string): string {
    return join(this.root, `work-${tx}`);
  }
  /** The work area of an open transaction; the contract's NotFoundError otherwise. */
  private openWork(tx: string): string {
    if (!this.open.has(tx))
      throw new NotFoundError(`no open transaction ${tx}`, {
        recoveryHint: 'Begin the transaction first (it may have been rolled back).',
      });
    return this.work(tx);
  }
  get current(): string {
    return join(this.root, 'current');
  }
  async begin(tx: TransactionId): Promise<BeginResult> {
    if (this.open.has(tx))
      throw new ValidationError(
        `transaction ${tx} already has a work area`,
        { field: 'transactionId' },
        { code: 'TX_EXISTS' },
      );
    this.open.add(tx);
    const exists = await this.exists();
    await mkdir(this.root, { recursive: true });
    if (exists) await cp(this.current, this.work(tx), { recursive: true, verbatimSymlinks: true });
    else await mkdir(this.work(tx));
    return { pattern: exists ? 'sync' : 'init', workPath: this.work(tx) };
  }
  async commit(tx: TransactionId, s: SnapshotInfo): Promise<void> {
    const work = this.openWork(tx);
    this.open.delete(tx);
    for (const h of this.placed.get(tx) ?? []) await rm(join(this.parked, h), { force: true });
    this.placed.delete(tx);
    await rm(join(this.root, 'old'), { recursive: true, force: true });
    if (await this.exists()) await rename(this.current, join(this.root, 'old'));
    await rename(work, this.current);
    await mkdir(join(this.root, 'meta'), { recursive: true });
    await writeFile(join(this.root, 'meta', `${s.snapshotId}.json`), JSON.stringify(s));
    await mkdir(join(this.root, 'snaps'), { recursive: true });
    await cp(this.current, join(this.root, 'snaps', s.snapshotId), { recursive: true, verbatimSymlinks: true });
  }
  async rollback(tx: TransactionId): Promise<CleanupReport> {
    this.open.delete(tx);
    await rm(this.work(tx), { recursive: true, force: true });
    return { removed: [this.work(tx)], leftovers: [] };
  }
  async writeFile(tx: TransactionId, p: string, data: ByteStream, expected: ExpectedFile): Promise<{ size: number }> {
    assertSafeRelativePath(p);
    const dest = join(this.openWork(tx), p);
    const made = await mkdir(dirname(dest), { recursive: true });
    const tmp = `${dest}.part`;
    const fh = await open(tmp, 'w');
    const h = testHasher();
    let size = 0;
    try {
      for await (const c of data) {
        h.update(c);
        size += c.length;
        await fh.write(c);
      }
    } catch (e) {
      await fh.close();
      await unlink(tmp);
      if (made) await rm(made, { recursive: true, force: true });
      throw e;
    }
    await fh.close();
    if (h.digest() !== expected.hash || (expected.size !== undefined && size !== expected.size)) {
      await unlink(tmp);
      if (made) await rm(made, { recursive: true, force: true });
      throw new ValidationError(`hash mismatch for ${p}`, { path: p }, { code: 'HASH_MISMATCH' });
    }
    await rename(tmp, dest);
    // parked as soon as verified, as the posix backend does: a rollback keeps it for the next transaction
    await mkdir(this.parked, { recursive: true });
    await cp(dest, join(this.parked, expected.hash.toLowerCase()));
    (this.placed.get(tx) ?? this.placed.set(tx, new Set()).get(tx)!).add(expected.hash.toLowerCase());
    return { size };
  }
  private get parked(): string {
    return join(this.root, 'parked');
  }
  private readonly placed = new Map<string, Set<string>>();
  async parkedContent(): Promise<string[]> {
    return (await readdir(this.parked).catch(() => [])).sort();
  }
  async copyParked(tx: TransactionId, to: string, expected: ExpectedFile): Promise<{ size: number }> {
    this.openWork(tx);
    const src = join(this.parked, parkedName(expected.hash));
    if (!(await lstat(src).catch(() => null))?.isFile()) throw new NotFoundError(`nothing parked for ${expected.hash}`);
    return this.writeFile(tx, to, createReadStream(src), expected);
  }
  async copyFile(tx: TransactionId, from: string, to: string, expected: ExpectedFile): Promise<{ size: number }> {
    if (this.o.gates) assertSafeRelativePath(from);
    const src = join(this.openWork(tx), from);
    const st = await lstat(src).catch(() => null);
    if (!st) throw new NotFoundError(`${from} is not in the work area`);
    if (!st.isFile()) throw new ValidationError(`${from} is not a file`, { path: from });
    return this.writeFile(tx, to, createReadStream(src), expected);
  }
  async writeLink(tx: TransactionId, p: string, target: string): Promise<void> {
    if (this.o.gates) {
      assertSafeRelativePath(p);
      assertSafeLinkTarget(p, target);
    }
    const dest = join(this.openWork(tx), p);
    await mkdir(dirname(dest), { recursive: true });
    await symlink(target, dest);
  }
  async deleteFile(tx: TransactionId, p: string): Promise<void> {
    if (this.o.gates) assertSafeRelativePath(p);
    await rm(join(this.openWork(tx), p), { force: true });
  }
  async exists(): Promise<boolean> {
    return stat(this.current).then(
      () => true,
      () => false,
    );
  }
  async readFile(p: string): Promise<ByteStream | null> {
    assertSafeRelativePath(p);
    const f = join(this.current, p);
    if (!(await stat(f).catch(() => null))) return null;
    return createReadStream(f);
  }
  async listSnapshots(): Promise<SnapshotRef[]> {
    const names = await readdir(join(this.root, 'snaps')).catch(() => []);
    const refs: SnapshotRef[] = [];
    for (const n of names) {
      const s = JSON.parse(await readFile(join(this.root, 'meta', `${n}.json`), 'utf8')) as SnapshotInfo;
      refs.push({
        snapshotId: n,
        createdAt: s.createdAt,
        message: s.message,
        manifestHash: s.manifestHash,
        user: s.user,
      });
    }
    return refs.sort((a, b) => (snapshotNumber(a.snapshotId) ?? 0) - (snapshotNumber(b.snapshotId) ?? 0));
  }
  async readSnapshotFile(id: string, p: string): Promise<ByteStream | null> {
    if (!(await stat(join(this.root, 'snaps', id)).catch(() => null)))
      throw new NotFoundError(`snapshot ${id} does not exist`);
    const f = join(this.root, 'snaps', id, p);
    if (!(await stat(f).catch(() => null))) return null;
    return createReadStream(f);
  }
  recovered = 0;
  async recover(): Promise<RecoveryReport> {
    this.recovered++;
    const names = (await readdir(this.root).catch(() => [])).filter((n) => n.startsWith('work-'));
    for (const n of names) await rm(join(this.root, n), { recursive: true, force: true });
    return {
      removed: names,
      leftovers: [],
      transactions: names.map((n) => ({ transactionId: n.slice(5), action: 'rolled-back' as const })),
    };
  }
}
