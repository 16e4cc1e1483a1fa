/**
 * Parked content on disk, for every backend: verified uploads kept by hash in
 * a directory of their own, outside every snapshot and work area, so the
 * transaction after an interrupted one places them without receiving them
 * again (`RemoteFilesystem.copyParked`). Best effort throughout: a failure to
 * park, drop or prune never fails a transaction, and whatever is left behind
 * expires (ctime older than the TTL). The posix layouts park by hard link at
 * write time (`link`); ZFS, whose work dataset is destroyed at rollback, copies
 * out (`store`).
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { link, lstat, mkdir, open, readdir, rename, rmdir, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { NotFoundError, ValidationError } from './errors.js';
import type { ByteStream, HasherFactory } from './interfaces.js';
import { PARKED_TTL_MS, parkedExpired, parkedName } from './parked.js';
import { EXPECTED_HASH_RE, streamVerified } from './verified-write.js';

export interface ParkedOptions {
  /** How long parked content is kept when nothing claims it (default PARKED_TTL_MS, 72 h). */
  parkedTtlMs?: number;
  /** The clock expiry is measured against (default Date.now); a test hook. */
  now?: () => number;
}

const code = (e: unknown): string | undefined => (e as NodeJS.ErrnoException | null)?.code;

export class ParkedStore {
  private readonly ttlMs: number;
  private readonly now: () => number;

  constructor(
    readonly dir: string,
    options: ParkedOptions = {},
  ) {
    this.ttlMs = options.parkedTtlMs ?? PARKED_TTL_MS;
    this.now = options.now ?? Date.now;
  }

  /** Hard-link a verified file of a work area as the parked content of `hash`, unless some is parked already. Never throws. */
  async link(file: string, hash: string): Promise<void> {
    try {
      const target = path.join(this.dir, parkedName(hash));
      try {
        await link(file, target);
      } catch (e) {
        if (code(e) !== 'ENOENT') return; // EEXIST: parked already; anything else: parking is best effort
        await this.makeDir();
        await link(file, target);
      }
    } catch {
      // best effort
    }
  }

  /**
   * Park the bytes of `source` as the content of `hash`: written to a temp name
   * in the parked directory, verified against the hash on the way (content that
   * no longer holds it is not parked), then renamed into place. Throws on
   * failure; the caller ignores it.
   */
  async store(hash: string, source: ByteStream, hasher: HasherFactory): Promise<void> {
    const name = parkedName(hash);
    await this.makeDir();
    const tmp = path.join(this.dir, `.tmp-${name}-${randomBytes(6).toString('hex')}`);
    const fh = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o666);
    try {
      try {
        await streamVerified(fh, name, source, { hash: name }, hasher);
      } finally {
        await fh.close();
      }
      await rename(tmp, path.join(this.dir, name));
    } catch (e) {
      await unlink(tmp).catch(() => undefined);
      throw e;
    }
  }

  /** Hashes of the parked files that have not expired, sorted; no directory → []. */
  async hashes(): Promise<string[]> {
    const out: string[] = [];
    for (const name of (await this.entries()).filter((n) => EXPECTED_HASH_RE.test(n))) {
      const st = await lstat(path.join(this.dir, name)).catch(() => null);
      if (st?.isFile() && !this.expired(st.ctimeMs)) out.push(name);
    }
    return out.sort();
  }

  /**
   * The parked file of `hash` opened read-only: never through a link, never
   * anything but a regular file, never an expired one. The name is a
   * validated hash, so nothing outside the parked directory can be named.
   * None → NotFoundError (the caller sends the content instead).
   */
  async open(hash: string): Promise<FileHandle> {
    const name = parkedName(hash);
    const missing = (): NotFoundError => new NotFoundError(`no parked content of ${name}`);
    let fh;
    try {
      fh = await open(path.join(this.dir, name), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    } catch (e) {
      if (code(e) === 'ENOENT' || code(e) === 'ENOTDIR' || code(e) === 'ELOOP') throw missing();
      throw e;
    }
    const st = await fh.stat();
    if (!st.isFile() || this.expired(st.ctimeMs)) {
      await fh.close();
      throw missing();
    }
    return fh;
  }

  /** Remove the parked file of `hash` if it is still the inode `fh` reads (one that failed its verification). */
  async discard(hash: string, fh: FileHandle): Promise<void> {
    try {
      const file = path.join(this.dir, parkedName(hash));
      const [opened, now] = await Promise.all([fh.stat(), lstat(file)]);
      if (opened.ino === now.ino && opened.dev === now.dev) await unlink(file);
    } catch {
      // best effort: it expires
    }
  }

  /** Drop the parked content of `hashes` (a commit stored it) and the directory when that empties it. Never throws. */
  async drop(hashes: Iterable<string>): Promise<void> {
    const want = new Set([...hashes].map((h) => h.toLowerCase()));
    if (want.size === 0) return;
    try {
      for (const name of await this.entries())
        if (want.has(name)) await unlink(path.join(this.dir, name)).catch(() => undefined);
      await rmdir(this.dir).catch(() => undefined);
    } catch {
      // best effort: it expires
    }
  }

  /** Remove what has expired, and anything in the directory that is no parked file (a temp file of a killed rollback). Never throws. */
  async prune(): Promise<void> {
    try {
      for (const name of await this.entries()) {
        const file = path.join(this.dir, name);
        const st = await lstat(file).catch(() => null);
        if (!st) continue;
        if (st.isFile() && EXPECTED_HASH_RE.test(name) && !this.expired(st.ctimeMs)) continue;
        if (st.isDirectory()) await rmdir(file).catch(() => undefined);
        else await unlink(file).catch(() => undefined);
      }
      await rmdir(this.dir).catch(() => undefined);
    } catch {
      // best effort
    }
  }

  private expired(ctimeMs: number): boolean {
    return parkedExpired(ctimeMs, this.now(), this.ttlMs);
  }

  /**
   * The parked directory, made here and never its parent (ZFS: P's directory,
   * whose creation could block P's mount; posix: the repository directory,
   * which a transaction's existence proves).
   */
  private async makeDir(): Promise<void> {
    try {
      await mkdir(this.dir, { mode: 0o777 });
    } catch (e) {
      if (code(e) !== 'EEXIST') throw e;
    }
    if (!(await lstat(this.dir)).isDirectory()) throw new Error(`${this.dir} is not a directory`);
  }

  private async entries(): Promise<string[]> {
    try {
      return await readdir(this.dir);
    } catch (e) {
      if (code(e) === 'ENOENT' || code(e) === 'ENOTDIR') return [];
      throw e;
    }
  }
}

/** Whether an error of a verified write says the content is not what its hash names (a damaged parked file), not only a size the caller got wrong. */
export function contentMismatch(e: unknown): boolean {
  return e instanceof ValidationError && e.code === 'HASH_MISMATCH' && e.details.field === 'hash';
}
