import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, open, readFile, rename, unlink, utimes, link, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname } from 'node:path';
import { DsgError, LockedError, type LockHolder } from '@dsg/contracts';

/** What the lock file holds: who asked for the lock, and the agent session holding it. */
export interface LockRecord {
  holder: LockHolder;
  agent: { host: string; pid: number; session: string };
}

export interface LockOptions {
  /** a lock whose file was not refreshed for this long is stale (default 15 min) */
  ttlMs?: number;
  /** how often the holder refreshes the file's mtime (default 60 s) */
  heartbeatMs?: number;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  // kill(pid, 0) succeeds on a zombie: an agent that died (SIGKILL) and was not reaped yet — or
  // never, when it was orphaned under an init that does not reap (containers). It holds nothing.
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.charAt(stat.lastIndexOf(')') + 2);
    return state !== 'Z' && state !== 'X';
  } catch {
    return true; // no /proc (macOS): kill(0) is all we know
  }
}

/**
 * The repository lock: one file created with O_EXCL. Stale (taken over) when
 * the agent process that made it is dead on this host (the holder process
 * only counts when the agent's cannot be checked here), or when its
 * heartbeat (the file's mtime, refreshed while held) is older than the TTL,
 * which covers holders on other hosts that vanished.
 */
export class RepositoryLock {
  private readonly session = randomBytes(8).toString('hex');
  private timer: NodeJS.Timeout | null = null;
  private held = false;

  constructor(
    readonly file: string,
    private readonly opts: LockOptions = {},
  ) {}

  get isHeld(): boolean {
    return this.held;
  }

  async read(): Promise<{ record: LockRecord | null; mtimeMs: number } | null> {
    try {
      const [text, st] = await Promise.all([readFile(this.file, 'utf8'), stat(this.file)]);
      let record: LockRecord | null = null;
      try {
        record = JSON.parse(text) as LockRecord;
      } catch {
        record = null; // half-written or foreign: judged by age only
      }
      return { record, mtimeMs: st.mtimeMs };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
  }

  private stale(cur: { record: LockRecord | null; mtimeMs: number }): boolean {
    const ttl = this.opts.ttlMs ?? 15 * 60_000;
    const r = cur.record;
    const here = hostname();
    // On this host a process's life is known for certain, and beats the TTL: a live but
    // stopped holder (a laptop lid closed on a local repository) keeps its lock; taking it
    // over let the holder's resumed commit point `current` at another client's snapshot.
    // The agent session holds the transaction, not the client that asked for it: while that
    // agent lives the lock is live even if its client is gone (the agent may still be
    // committing, or be stopped with its temp dataset mounted; a silent client's session is
    // ended by the agent itself, see --client-silence).
    if (r?.agent?.host === here && typeof r.agent.pid === 'number' && r.agent.pid > 0) return !alive(r.agent.pid);
    if (Date.now() - cur.mtimeMs > ttl) return true;
    if (!r) return false;
    if (r.holder?.host === here && typeof r.holder.pid === 'number' && r.holder.pid > 0 && !alive(r.holder.pid))
      return true;
    return false;
  }

  /** Take the lock or throw LockedError naming the live holder. Returns whether a stale lock was taken over. */
  async acquire(holder: LockHolder): Promise<{ tookOver: boolean }> {
    if (this.held) return { tookOver: false };
    await mkdir(dirname(this.file), { recursive: true });
    const record: LockRecord = { holder, agent: { host: hostname(), pid: process.pid, session: this.session } };
    let tookOver = false;
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        const fh = await open(this.file, 'wx', 0o666); // the umask decides: a team's 002 lets the group read the holder
        try {
          await fh.writeFile(JSON.stringify(record) + '\n');
          await fh.sync();
        } finally {
          await fh.close();
        }
        this.held = true;
        this.startHeartbeat();
        return { tookOver };
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      const cur = await this.read();
      if (!cur) continue;
      if (!this.stale(cur)) {
        throw new LockedError(
          cur.record?.holder ?? {
            user: 'unknown',
            host: 'unknown',
            pid: 0,
            since: new Date(cur.mtimeMs).toISOString(),
          },
        );
      }
      // Move the stale file aside; only one taker's rename can win, and the
      // winner checks it moved the very lock it judged stale.
      const aside = `${this.file}.stale-${randomBytes(4).toString('hex')}`;
      try {
        await rename(this.file, aside);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') continue;
        if (code === 'EPERM' || code === 'EACCES') {
          // a sticky lock directory (recommended for teams): only the lock's owner or root may remove it
          const who = cur.record?.holder?.user ?? 'another user';
          throw new DsgError(
            'STALE_LOCK',
            `the lock ${this.file} is stale (its agent is gone) but belongs to ${who}, and this user may not remove it (${code}: a sticky directory lets only the lock's owner or root)`,
            {
              recoveryHint: `Ask ${who} to run any dsg command on this repository (their agent takes the stale lock over), or ask an administrator to remove ${this.file}.`,
              cause: e,
            },
          );
        }
        throw e;
      }
      const moved = await readFile(aside, 'utf8').catch(() => '');
      const judged = cur.record ? JSON.stringify(cur.record) : null;
      if (judged !== null && moved.trim() !== judged) {
        // we raced another taker and moved its fresh lock: put it back
        await link(aside, this.file).catch(() => {});
      }
      await unlink(aside).catch(() => {});
      tookOver = true;
    }
    const cur = await this.read();
    throw new LockedError(
      cur?.record?.holder ?? { user: 'unknown', host: 'unknown', pid: 0, since: new Date().toISOString() },
    );
  }

  /** How many heartbeat touches have been started (tests watch it). */
  heartbeats = 0;

  private startHeartbeat(): void {
    const every = this.opts.heartbeatMs ?? 60_000;
    // One touch at a time: on a filesystem that stopped answering (a wedged
    // FUSE mount) each beat would otherwise queue one more call behind it.
    let touching = false;
    this.timer = setInterval(() => {
      if (touching) return;
      touching = true;
      this.heartbeats++;
      const now = new Date();
      utimes(this.file, now, now)
        .catch(() => {})
        .finally(() => (touching = false));
    }, every);
    this.timer.unref();
  }

  /**
   * Right before a commit: the lock file must still be this session's. A lock
   * taken over meanwhile (the TTL ran out while this agent was stopped) must
   * not let the old holder commit over the new one's work.
   */
  async verify(): Promise<void> {
    const cur = this.held ? await this.read() : null;
    if (cur?.record?.agent?.session !== this.session) {
      this.held = false;
      if (this.timer) clearInterval(this.timer);
      this.timer = null;
      throw new DsgError(
        'LOCK_LOST',
        'this session no longer holds the repository lock (it was taken over while this session was stopped); nothing was committed',
        {
          recoveryHint: 'Run `dsg status`, then sync again: the repository may have moved on.',
        },
      );
    }
  }

  /** Release if this session holds it; a lock someone else now holds is left alone. */
  async release(): Promise<void> {
    if (!this.held) return;
    this.held = false;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    const cur = await this.read();
    if (cur?.record?.agent?.session === this.session) await unlink(this.file).catch(() => {});
  }
}
