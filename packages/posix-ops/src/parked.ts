/**
 * Parked content (both posix layouts): verified uploads kept by hash in a
 * directory of their own, outside every snapshot and work area, so the
 * next transaction after an interrupted one places them without receiving
 * them again (`RemoteFilesystem.copyParked`). Best effort throughout: a
 * failure to park or to drop never fails a transaction, and whatever is
 * left behind expires (ctime older than the TTL).
 */
import { constants } from 'node:fs';
import { link, lstat, mkdir, open, readdir, rmdir, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import {
  EXPECTED_HASH_RE,
  NotFoundError,
  PARKED_TTL_MS,
  parkedExpired,
  parkedName,
  ValidationError,
} from '@dsg/contracts';
import { errno } from './fs-util.js';
import { DIR_MODE } from './work-area.js';

export interface ParkedOptions {
  /** How long parked content is kept when nothing claims it (default PARKED_TTL_MS, 72 h). */
  parkedTtlMs?: number;
  /** The clock expiry is measured against (default Date.now); a test hook. */
  now?: () => number;
}

export class ParkedFiles {
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
  async park(file: string, hash: string): Promise<void> {
    let name: string;
    try {
      name = parkedName(hash);
    } catch {
      return;
    }
    const target = path.join(this.dir, name);
    try {
      await link(file, target);
    } catch (e) {
      if (errno(e) !== 'ENOENT') return; // EEXIST: parked already; anything else: parking is best effort
      try {
        await mkdir(this.dir, { recursive: true, mode: DIR_MODE });
        await link(file, target);
      } catch {
        // best effort
      }
    }
  }

  /** Hashes of the parked files that have not expired, sorted; no directory → []. */
  async hashes(): Promise<string[]> {
    const out: string[] = [];
    for (const name of await this.names()) {
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
      if (errno(e) === 'ENOENT' || errno(e) === 'ENOTDIR' || errno(e) === 'ELOOP') throw missing();
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
      const [open, now] = await Promise.all([fh.stat(), lstat(file)]);
      if (open.ino === now.ino && open.dev === now.dev) await unlink(file);
    } catch {
      // best effort: it expires
    }
  }

  /** Drop the parked content of `hashes` (a commit stored it) and the directory when that empties it. Never throws. */
  async drop(hashes: Iterable<string>): Promise<void> {
    const want = new Set([...hashes].map((h) => h.toLowerCase()));
    if (want.size === 0) return;
    try {
      for (const name of await this.names())
        if (want.has(name)) await unlink(path.join(this.dir, name)).catch(() => undefined);
      await rmdir(this.dir).catch(() => undefined);
    } catch {
      // best effort: it expires
    }
  }

  /** Remove what has expired (and anything in the directory that is no parked file). Never throws. */
  async prune(): Promise<void> {
    try {
      for (const name of await this.names(true)) {
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

  private async names(all = false): Promise<string[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (e) {
      if (errno(e) === 'ENOENT' || errno(e) === 'ENOTDIR') return [];
      throw e;
    }
    return all ? names : names.filter((n) => EXPECTED_HASH_RE.test(n));
  }
}

/** Whether an error of a verified write says the content is not what its hash names (a damaged parked file), not only a size the caller got wrong. */
export function contentMismatch(e: unknown): boolean {
  return e instanceof ValidationError && e.code === 'HASH_MISMATCH' && e.details.field === 'hash';
}
