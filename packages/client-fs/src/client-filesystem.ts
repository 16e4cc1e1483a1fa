import { constants, createReadStream } from 'node:fs';
import { link, lstat, mkdir, open, readdir, rm, symlink, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import {
  assertSafeLinkTarget,
  DSG_DIR,
  faultPoint,
  forEachLimited,
  fsyncDir,
  parkedExpired,
  PARKED_TTL_MS,
  resolveBeneath,
  streamVerified,
  writeFileAtomic,
  ValidationError,
  type ByteStream,
  type CleanupReport,
  type ClientFilesystem,
  type ExpectedFile,
  type HasherFactory,
  type TransactionId,
  FILE_READ_CHUNK,
} from '@dsg/contracts';
import {
  backupDir,
  checkDataPath,
  layout,
  metaTarget,
  parkedFile,
  stagedMetaPath,
  stagingDir,
  type Layout,
} from './layout.js';
import {
  applyJournal,
  dropEmptyBackup,
  dropJournal,
  readJournal,
  undoJournal,
  writeJournal,
  type Journal,
  type JournalOp,
} from './journal.js';

/** Why an entry may not be written into this working copy, or null (see the constructor). */
export type WriteGate = (e: { path: string; type: 'file' | 'link'; reference?: string }) => string | null;

interface TxState {
  /** by root-relative target; the last staged operation on a path wins */
  ops: Map<string, JournalOp>;
  remoteSnapshot: string | null;
  /** hashes of the data files staged (downloaded or from parked content): no longer parked once committed */
  hashes: Set<string>;
}

/** Bytes read from a parked file per step while copying it into staging. */
const PARKED_CHUNK = 1024 * 1024;

/** The whole content of an open file, read through its handle (never reopened by name). */
async function* readHandle(fh: FileHandle): AsyncGenerator<Uint8Array> {
  for (;;) {
    const buf = Buffer.allocUnsafe(PARKED_CHUNK);
    const { bytesRead } = await fh.read(buf, 0, PARKED_CHUNK, null);
    if (bytesRead === 0) return;
    yield buf.subarray(0, bytesRead);
  }
}

const errCode = (e: unknown): string | undefined => (e as { code?: unknown } | null)?.code as string | undefined;

/** Deletes, then data, metadata last: last-sync.json only lands after the data it describes. */
function orderOps(ops: Iterable<JournalOp>): JournalOp[] {
  const rank = (o: JournalOp): number => (o.target.startsWith('.dsg/') ? 2 : o.kind === 'delete' ? 0 : 1);
  return [...ops].sort((a, b) => rank(a) - rank(b) || (a.target < b.target ? -1 : a.target > b.target ? 1 : 0));
}

/**
 * The client side of a transaction on the local disk (seed section 4).
 * Staging lives in `<root>/.dsg/staging/<tx>/` — the same filesystem as the
 * working tree, so applying is a rename. Commit journals, backs up, applies;
 * rollback restores; both are redoable after a crash (see recoverClient).
 */
export class LocalClientFilesystem implements ClientFilesystem {
  readonly root: string;
  readonly #hasher: HasherFactory;
  /** the streams readFile handed out: a mismatch on one of them is a local file that changed, not the repository */
  readonly #ownReads = new WeakSet<object>();
  readonly #l: Layout;
  readonly #txs = new Map<string, TxState>();
  readonly #canWrite: WriteGate | undefined;
  readonly #parkedTtlMs: number;
  readonly #now: () => number;

  /**
   * `canWrite`: the project's scope rule (the CLI passes @dsg/manifest's
   * `projectScope(dataDirs).problem`): a path or link it refuses is never
   * staged, whatever the caller asks. Without it only the rules that hold
   * for every project apply (safe path, not in .dsg/.git, link write rule).
   * `parkedTtlMs` / `now`: how long parked content is kept and the clock
   * that ages it (default `PARKED_TTL_MS`, `Date.now`; tests inject them).
   */
  constructor(options: {
    root: string;
    hasher: HasherFactory;
    canWrite?: WriteGate;
    parkedTtlMs?: number;
    now?: () => number;
  }) {
    this.root = path.resolve(options.root);
    this.#hasher = options.hasher;
    this.#l = layout(this.root);
    this.#canWrite = options.canWrite;
    this.#parkedTtlMs = options.parkedTtlMs ?? PARKED_TTL_MS;
    this.#now = options.now ?? Date.now;
  }

  #gate(e: { path: string; type: 'file' | 'link'; reference?: string }): void {
    checkDataPath(e.path);
    if (e.type === 'link') assertSafeLinkTarget(e.path, e.reference ?? '');
    const why = this.#canWrite?.(e);
    if (why) {
      throw new ValidationError(
        `refused to write ${JSON.stringify(e.path)} into the working copy: ${why}`,
        { path: e.path },
        {
          code: 'OUT_OF_SCOPE',
          recoveryHint:
            'The repository holds an entry this project never writes; it stays in the repository untouched.',
        },
      );
    }
  }

  #state(tx: TransactionId): TxState {
    const s = this.#txs.get(tx);
    if (!s) throw new Error(`client transaction ${tx} was not begun`);
    return s;
  }

  async begin(tx: TransactionId): Promise<void> {
    if (this.#txs.has(tx)) return;
    await mkdir(path.join(stagingDir(this.#l, tx), 'data'), { recursive: true });
    await mkdir(path.join(stagingDir(this.#l, tx), 'meta'), { recursive: true });
    this.#txs.set(tx, { ops: new Map(), remoteSnapshot: null, hashes: new Set() });
    await this.#expireParked();
  }

  /** Best effort: parked content nobody claimed within the TTL goes; what cannot be removed is tried next time. */
  async #expireParked(): Promise<void> {
    let names: string[];
    try {
      names = await readdir(this.#l.parkedDir);
    } catch {
      return; // none parked yet
    }
    const now = this.#now();
    await forEachLimited(names, 8, async (name) => {
      const p = path.join(this.#l.parkedDir, name);
      try {
        // ctime: set when the file was linked here or written, never by the file's own (downloaded) mtime
        const st = await lstat(p);
        if (!st.isDirectory() && parkedExpired(st.ctimeMs, now, this.#parkedTtlMs)) await unlink(p);
      } catch {
        // gone meanwhile, or not removable now: the next begin tries again
      }
    });
  }

  /**
   * Keep a verified download by hash, so an interrupted run (Ctrl-C, a
   * dropped connection, kill -9 — at any point from here on) leaves it for
   * the next one. A hard link: no copy, no extra space while staged. Best
   * effort: a name already there (the same verified bytes) or a failure
   * only means this download is not resumable.
   */
  async #park(staged: string, hash: string): Promise<void> {
    try {
      await mkdir(this.#l.parkedDir, { recursive: true });
      await link(staged, parkedFile(this.#l, hash));
    } catch {
      // EEXIST: already parked; otherwise nothing is lost but the resume
    }
  }

  async #stagedPath(tx: TransactionId, staged: string): Promise<string> {
    // never through a symlinked parent: staging holds only what dsg put there
    const abs = await resolveBeneath(stagingDir(this.#l, tx), staged);
    await mkdir(path.dirname(abs), { recursive: true });
    await rm(abs, { force: true });
    return abs;
  }

  async stageFile(tx: TransactionId, relPath: string, data: ByteStream, expected: ExpectedFile): Promise<void> {
    this.#gate({ path: relPath, type: 'file' });
    const s = this.#state(tx);
    const staged = `data/${relPath}`;
    const abs = await this.#stagedPath(tx, staged);
    await this.#writeVerified(abs, relPath, data, expected);
    s.ops.set(relPath, { kind: 'put', target: relPath, staged });
    s.hashes.add(expected.hash.toLowerCase());
    await this.#park(abs, expected.hash);
  }

  /**
   * Stage the parked content with expected's hash at relPath, like a
   * download: the same gate, verified (hash, size) and fsynced, mtime
   * applied, and the op recorded so commit applies it. False when nothing
   * usable is parked (none, not a regular file, or it no longer verifies —
   * then it is removed); the caller downloads instead.
   *
   * A COPY, not a hard link: the staged file becomes the tree file, and
   * linking would make it share an inode with the parked name — and, when
   * one hash is placed at two paths, with another tree file, so editing one
   * in place would change the other. A copy gives every placed file its own
   * inode; dsg itself only ever links, reads and unlinks a parked file.
   */
  async stageParked(tx: TransactionId, relPath: string, expected: ExpectedFile): Promise<boolean> {
    this.#gate({ path: relPath, type: 'file' });
    const s = this.#state(tx);
    const parked = parkedFile(this.#l, expected.hash);
    let src: FileHandle;
    try {
      // NOFOLLOW: a link planted here is not content; NONBLOCK: a FIFO must not hang the open
      src = await open(parked, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    } catch (e) {
      if (['ENOENT', 'ENOTDIR', 'ELOOP'].includes(errCode(e) ?? '')) return false;
      throw e;
    }
    try {
      if (!(await src.stat()).isFile()) return false;
      const staged = `data/${relPath}`;
      const abs = await this.#stagedPath(tx, staged);
      try {
        await this.#writeVerified(abs, relPath, readHandle(src), expected);
      } catch (e) {
        if (errCode(e) !== 'HASH_MISMATCH') throw e;
        await unlink(parked).catch(() => undefined);
        // whatever was staged at this path before is gone (as after a failed download): so is its op
        if (s.ops.get(relPath)?.kind === 'put') s.ops.delete(relPath);
        return false;
      }
      s.ops.set(relPath, { kind: 'put', target: relPath, staged });
      s.hashes.add(expected.hash.toLowerCase());
      return true;
    } finally {
      await src.close();
    }
  }

  async #writeVerified(abs: string, p: string, data: ByteStream, expected: ExpectedFile): Promise<void> {
    const own = this.#ownReads.has(data);
    const fh = await open(abs, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o666);
    try {
      try {
        // fsync: the journal's renames publish these bytes and last-sync.json then vouches for them;
        // after a power loss a torn file would look like a local edit and be uploaded
        await streamVerified(fh, p, data, expected, this.#hasher, {
          fsync: true,
          mismatch: (m) => mismatch(p, own, `${m.field} mismatch for ${p}: expected ${m.expected}, received ${m.got}`),
        });
      } finally {
        await fh.close();
      }
    } catch (e) {
      await unlink(abs).catch(() => undefined);
      throw e;
    }
  }

  async stageLink(tx: TransactionId, relPath: string, target: string): Promise<void> {
    this.#gate({ path: relPath, type: 'link', reference: target });
    const s = this.#state(tx);
    const staged = `data/${relPath}`;
    const abs = await this.#stagedPath(tx, staged);
    await symlink(target, abs);
    s.ops.set(relPath, { kind: 'put', target: relPath, staged });
  }

  async stageDelete(tx: TransactionId, relPath: string): Promise<void> {
    this.#gate({ path: relPath, type: 'file' });
    const s = this.#state(tx);
    const prev = s.ops.get(relPath);
    if (prev?.kind === 'put') await rm(path.join(stagingDir(this.#l, tx), prev.staged), { force: true });
    s.ops.set(relPath, { kind: 'delete', target: relPath });
  }

  async stageMeta(
    tx: TransactionId,
    relPath: string,
    content: Uint8Array | Iterable<Uint8Array> | AsyncIterable<Uint8Array>,
  ): Promise<void> {
    const target = metaTarget(relPath);
    const s = this.#state(tx);
    const staged = stagedMetaPath(target);
    const abs = await this.#stagedPath(tx, staged);
    await mkdir(path.dirname(abs), { recursive: true });
    await writeFileAtomic(abs, content);
    s.ops.set(target, { kind: 'put', target, staged });
  }

  /**
   * Records the remote snapshot and writes the journal NOW, before the
   * remote commits: a crash between the remote commit and the client commit
   * then leaves a journal that recovery can finish.
   */
  async setRemoteSnapshot(tx: TransactionId, snapshotId: string): Promise<void> {
    const s = this.#state(tx);
    s.remoteSnapshot = snapshotId;
    await writeJournal(this.#l, this.#journal(tx, s));
  }

  #journal(tx: TransactionId, s: TxState): Journal {
    return { journal_version: 1, transaction_id: tx, remote_snapshot: s.remoteSnapshot, ops: orderOps(s.ops.values()) };
  }

  async commit(tx: TransactionId): Promise<void> {
    const s = this.#state(tx);
    const j = this.#journal(tx, s);
    await writeJournal(this.#l, j);
    faultPoint('client.commit.after-journal');
    await applyJournal(this.#l, j);
    await finishApply(this.#l, tx);
    this.#txs.delete(tx);
    // in the tree now: no longer worth keeping (best effort; leftovers expire)
    await forEachLimited([...s.hashes], 8, (h) => unlink(parkedFile(this.#l, h)).catch(() => undefined));
  }

  async rollback(tx: TransactionId): Promise<CleanupReport> {
    this.#txs.delete(tx);
    return rollbackClientTx(this.#l, tx);
  }

  readFile(relPath: string): ByteStream {
    const root = this.root;
    const s = (async function* () {
      checkDataPath(relPath);
      const abs = await resolveBeneath(root, relPath);
      for await (const chunk of createReadStream(abs, { highWaterMark: FILE_READ_CHUNK })) yield chunk as Uint8Array;
    })();
    this.#ownReads.add(s);
    return s;
  }
}

/**
 * A staged file whose bytes are not the ones promised. From this working
 * copy (a conflict loser's backup copy, read by readFile): the file changed
 * while dsg read it, and running again re-reads it. From the repository (a
 * download): the repository's copy does not match its own manifest — changed
 * outside dsg, or left so by another tool (HRDAG/dsg 0.4.4 can leave a
 * conflict resolved that way). Running again reads the same bytes, so the
 * hint says how the repository is repaired instead.
 */
function mismatch(p: string, local: boolean, what: string): ValidationError {
  if (local) {
    return new ValidationError(
      `${what}: ${p} changed in this working copy while dsg was reading it; nothing was written`,
      { path: p },
      {
        code: 'HASH_MISMATCH',
        recoveryHint: 'Let whatever is writing the file finish, then run the command again.',
      },
    );
  }
  return new ValidationError(
    `${what}: the repository's copy of ${p} does not match the repository's manifest; nothing was written here`,
    { path: p },
    {
      code: 'HASH_MISMATCH',
      recoveryHint:
        `The repository is inconsistent: its copy of ${p} was changed outside dsg, or left so by another tool, and running again fails the same way ` +
        "(unless a sync was committing to it at that very moment). Tell the repository's admin: `dsg validate-snapshot` lists every such file; " +
        'restore each on the repository host from a working copy that holds the bytes the manifest names ' +
        `(\`dsg validate-file ${p}\` there checks them against its last sync).`,
    },
  );
}

/**
 * After a successful apply: staging gone, journal dropped, then the backup of
 * the old `.dsg/` metadata (only an undo could use it; kept, each sync would
 * keep a whole manifest) and an empty backup dir.
 */
export async function finishApply(l: Layout, tx: string): Promise<void> {
  await rm(stagingDir(l, tx), { recursive: true, force: true });
  faultPoint('client.commit.before-journal-drop');
  await dropJournal(l, tx);
  // only now: until the journal is gone an undo may restore the old metadata from there
  await rm(path.join(backupDir(l, tx), DSG_DIR), { recursive: true, force: true });
  await dropEmptyBackup(l, tx);
  await fsyncDir(l.dsg); // fsyncDir already tolerates filesystems that cannot sync a directory; EIO is real
}

/** Undo tx (journal-guided if a journal exists), then remove its staging. Never throws. */
export async function rollbackClientTx(l: Layout, tx: string): Promise<CleanupReport> {
  const report: CleanupReport = { removed: [], leftovers: [] };
  try {
    const j = await readJournal(l, tx);
    if (j) report.leftovers.push(...(await undoJournal(l, j)));
    if (report.leftovers.length === 0) {
      await rm(stagingDir(l, tx), { recursive: true, force: true });
      report.removed.push(stagingDir(l, tx));
      await dropEmptyBackup(l, tx);
      await dropJournal(l, tx);
    }
  } catch (e) {
    report.leftovers.push({ name: stagingDir(l, tx), error: e instanceof Error ? e.message : String(e) });
  }
  return report;
}
