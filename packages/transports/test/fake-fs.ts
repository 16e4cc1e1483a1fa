// A minimal RemoteFilesystem over a temp directory: the LOWER component,
// faked only to test the protocol layer above it. The real backends
// (posix-ops) are used by the integration tests.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { cp, mkdir, open, readdir, rename, rm, stat, symlink, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import {
  ValidationError,
  assertSafeRelativePath,
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

export class FakeRemoteFilesystem implements RemoteFilesystem {
  constructor(readonly root: string) {}
  work(tx: string): string {
    return join(this.root, `work-${tx}`);
  }
  get current(): string {
    return join(this.root, 'current');
  }
  async begin(tx: TransactionId): Promise<BeginResult> {
    const exists = await this.exists();
    await mkdir(this.root, { recursive: true });
    if (exists) await cp(this.current, this.work(tx), { recursive: true, verbatimSymlinks: true });
    else await mkdir(this.work(tx));
    return { pattern: exists ? 'sync' : 'init', workPath: this.work(tx) };
  }
  async commit(tx: TransactionId, s: SnapshotInfo): Promise<void> {
    await rm(join(this.root, 'old'), { recursive: true, force: true });
    if (await this.exists()) await rename(this.current, join(this.root, 'old'));
    await rename(this.work(tx), this.current);
    await mkdir(join(this.root, 'snaps'), { recursive: true });
    await cp(this.current, join(this.root, 'snaps', s.snapshotId), { recursive: true, verbatimSymlinks: true });
  }
  async rollback(tx: TransactionId): Promise<CleanupReport> {
    await rm(this.work(tx), { recursive: true, force: true });
    return { removed: [this.work(tx)], leftovers: [] };
  }
  async writeFile(tx: TransactionId, p: string, data: ByteStream, expected: ExpectedFile): Promise<{ size: number }> {
    assertSafeRelativePath(p);
    const dest = join(this.work(tx), p);
    await mkdir(dirname(dest), { recursive: true });
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
      throw e;
    }
    await fh.close();
    if (h.digest() !== expected.hash) {
      await unlink(tmp);
      throw new ValidationError(`hash mismatch for ${p}`, { path: p });
    }
    await rename(tmp, dest);
    return { size };
  }
  async writeLink(tx: TransactionId, p: string, target: string): Promise<void> {
    const dest = join(this.work(tx), p);
    await mkdir(dirname(dest), { recursive: true });
    await symlink(target, dest);
  }
  async deleteFile(tx: TransactionId, p: string): Promise<void> {
    await rm(join(this.work(tx), p), { force: true });
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
    return names.map((n) => ({ snapshotId: n, createdAt: new Date(0).toISOString() }));
  }
  async readSnapshotFile(id: string, p: string): Promise<ByteStream | null> {
    const f = join(this.root, 'snaps', id, p);
    if (!(await stat(f).catch(() => null))) return null;
    return createReadStream(f);
  }
  recovered = 0;
  async recover(): Promise<RecoveryReport> {
    this.recovered++;
    const names = (await readdir(this.root).catch(() => [])).filter((n) => n.startsWith('work-'));
    for (const n of names) await rm(join(this.root, n), { recursive: true, force: true });
    return { removed: names, leftovers: [], transactions: names.map((n) => ({ transactionId: n.slice(5), action: 'rolled-back' as const })) };
  }
}
