import { readFileSync } from 'node:fs';
import { access } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, isAbsolute, normalize } from 'node:path';
import {
  DsgError,
  LockedError,
  Mutex,
  TransportError,
  ValidationError,
  assertLinkTargetOnDisk,
  assertSafeLinkTarget,
  errorFromJSON,
  errorToJSON,
  resolveBeneath,
  type ByteStream,
  type ExpectedFile,
  type HasherFactory,
  type LockHolder,
  type RemoteFilesystem,
  type RepositoryHost,
  type SerializedError,
  type SnapshotInfo,
  type SnapshotMounter,
  type TransactionId,
} from '@dsg/contracts';
import { ByteQueue } from './byte-queue.js';
import { DEFAULT_MAX_PAYLOAD, FrameKind, FrameWriter, ProtocolError, parseJson, readFrames, type Frame } from './frames.js';
import { RepositoryLock, type LockOptions } from './lock.js';
import * as P from './protocol.js';

/**
 * A system error of the repository's disk as the client should see it: what
 * happened ON THE REPOSITORY HOST and what to do. A plain Error would cross
 * the wire as INTERNAL with "run again with --debug" — useless for a full disk.
 */
export function repositoryError(e: unknown): unknown {
  if (e instanceof DsgError || !(e instanceof Error)) return e;
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new DsgError('NO_SPACE', `no space left in the repository on ${hostname()}: ${e.message}`, {
      recoveryHint: 'Free space on the repository host (or grow its pool or quota), then run the command again.',
      cause: e,
    });
  }
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
    return new DsgError('PERMISSION', `the repository on ${hostname()} refused the operation: ${e.message}`, {
      recoveryHint: 'Check the ownership and permissions of the repository on its host (the agent runs as your ssh user).',
      cause: e,
    });
  }
  return e;
}

export type ServedFilesystem = RemoteFilesystem & Partial<SnapshotMounter>;

export interface AgentServerOptions {
  /**
   * Where the repositories are: each backend package's host (`posixHost`,
   * `zfsHost`) gives the backend, the lock file and the listing of one
   * repository type. Names reach it already validated by the server; its
   * lockFile is asked once per session.
   */
  host: RepositoryHost;
  /** The hash the backends verify uploads with (kept for backends built by the caller). */
  hasher: HasherFactory;
  /** Diagnostics, one line each; never the protocol stream. */
  log?: (line: string) => void;
  /** Largest frame payload accepted (default 1 MiB); a bigger frame closes the session. */
  maxFramePayload?: number;
  lock?: LockOptions;
  /** At `open`, run recover() if the repository lock is free (default true). */
  recoverOnOpen?: boolean;
  /** Reported in the hello reply. */
  agentVersion?: string;
  /**
   * Accept the client's `at` in mountSnapshot (default false: an agent
   * reached over SSH chooses where snapshots are mounted). An in-process
   * server runs as the very user who asks, so the path is theirs to choose.
   */
  clientMountpoints?: boolean;
  /**
   * End a session whose client sent nothing at all for this long (ms;
   * default CLIENT_SILENCE_MS; 0 = never). Only for clients that offer
   * PINGs in hello (`pings: true`): the hello reply asks for one every
   * quarter of this. So a stopped, frozen or vanished client cannot keep
   * the repository lock: its transaction is rolled back and the lock
   * released. Time the agent itself spends blocked (a full upload queue,
   * its own busy event loop) does not count.
   */
  clientSilenceMs?: number;
  /**
   * Requests one session may have in flight (default MAX_IN_FLIGHT). One
   * more is answered with a protocol error and the session is closed.
   */
  maxInFlight?: number;
  /**
   * Serve this one repository name only (`dsg-agent serve
   * --restrict-to-repository NAME`): `open` of any other name is refused,
   * `listRepositories` shows only this one (if it exists).
   */
  restrictToRepository?: string;
  /**
   * Refuse every request that changes anything on the server (`--read-only`):
   * lock, unlock, begin, commit, rollback, writeFile, writeLink, deleteFile,
   * recover, mountSnapshot, unmountSnapshot; and no recovery at open.
   */
  readOnly?: boolean;
}

/**
 * Requests in flight per session before the agent closes it. The client
 * keeps 16 transfers in flight (@dsg/coordinator DEFAULT_CONCURRENCY) plus
 * a few control requests; 32 is twice that. Each in-flight upload may hold
 * a 4 MiB queue plus a 1 MiB frame, so the cap bounds what one session can
 * make the agent hold (32 × ~5 MiB, where 54 unbounded uploads measured
 * 468 MiB RSS) instead of letting any client grow it without limit.
 */
export const MAX_IN_FLIGHT = 32;

/** Default client silence before the agent ends a session (2 min; the client PINGs every 30 s). */
export const CLIENT_SILENCE_MS = 120_000;

/** Requests that change the repository (or its lock): refused by a read-only agent. */
const MUTATING = new Set<string>(['lock', 'unlock', 'begin', 'commit', 'rollback', 'writeFile', 'writeLink', 'deleteFile', 'recover', 'mountSnapshot', 'unmountSnapshot']);

type HandlerResult = { result: unknown } | { stream: ByteStream | null };

/** The lock holder name of the agent's own recovery at open. */
const RECOVERY_USER = 'dsg-agent (recovery at open)';

const NEEDS_LOCK = new Set<string>(['begin', 'commit', 'rollback', 'writeFile', 'writeLink', 'deleteFile', 'recover']);
const BEFORE_OPEN = new Set<string>(['hello', 'listRepositories', 'stats', 'open']);
/** Run under the session mutex (writeFile too, in two parts: see startUpload). */
const SERIALIZED = new Set<string>(['open', 'lock', 'unlock', 'begin', 'commit', 'rollback', 'writeLink', 'deleteFile', 'recover']);

/** Peak and current resident memory, from /proc where there is one. */
export function memoryStats(): { rss: number; peakRss: number | null } {
  const rss = process.memoryUsage().rss;
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
    return { rss, peakRss: m ? Number(m[1]) * 1024 : null };
  } catch {
    return { rss, peakRss: null };
  }
}

function unsupported(what: string): DsgError {
  return new DsgError('UNSUPPORTED', `this repository backend cannot ${what}`, {
    recoveryHint: 'Use a repository type that supports it (zfs or posix).',
  });
}

/**
 * The agent's protocol handler: one call to serve() is one client session.
 * Every name and path is validated before it reaches a backend; a malformed
 * frame or message ends the session; whatever way a session ends, its open
 * transactions are rolled back and its lock released.
 */
export class AgentServer {
  constructor(private readonly o: AgentServerOptions) {}

  private log(line: string): void {
    this.o.log?.(line);
  }

  async serve(input: NodeJS.ReadableStream, output: NodeJS.WritableStream): Promise<void> {
    const session = new Session(this, this.o, input, output);
    await session.run();
  }

  /** @internal */
  logLine(line: string): void {
    this.log(line);
  }
}

class Session {
  private readonly max: number;
  private readonly writer: FrameWriter;
  private greeted = false;
  private repoName: string | null = null;
  private fs: ServedFilesystem | null = null;
  private lock: RepositoryLock | null = null;
  /** where the open repository's lock file is (see lockFile) */
  private lockPath: string | null = null;
  private readonly openTx = new Map<TransactionId, string>();
  private readonly uploads = new Map<number, ByteQueue>();
  private readonly downloads = new Map<number, { cancelled: boolean }>();
  private readonly inflight = new Set<Promise<void>>();
  /**
   * Every work-area mutation of this session runs in it, in arrival order —
   * begin, commit, rollback, recover, writeLink, deleteFile (and open, lock,
   * unlock) each holding it alone; an upload holding it SHARED with other
   * uploads from its start until the backend pulls the first byte (check →
   * mkdir → open) and again from the end of its data until the backend
   * returns (hash check → rename, or cleanup). So a client sending writeLink
   * and writeFile at once can never interleave one's check with the other's
   * change (the agent escape: a link planted between writeFile's check and
   * its mkdir/open). Uploads may share it because none of them creates a
   * link or removes a directory (the backend's cleanup of a failed upload
   * holds the backend's own lock alone): a parent one of them proved a real
   * directory stays one while the others run. The upload's data itself
   * flows while it is released: a holder never waits for a frame, so a
   * stalled or hostile upload cannot deadlock the session, and the
   * transfers still overlap.
   */
  private readonly mutex = new Mutex();
  private readonly maxInFlight: number;
  private maxId = 0;
  private closing = false;
  private heartbeat: NodeJS.Timeout | null = null;
  /** the client agreed to PING (hello pings:true): PING frames are accepted, silence is watched */
  private clientPings = false;
  private silenceWatch: NodeJS.Timeout | null = null;
  /** when the last frame arrived (or the read loop last got back to reading) */
  private lastInput = Date.now();
  /** the read loop is handing a frame on (a full upload queue): not the client's silence */
  private delivering = false;
  private silenced: TransportError | null = null;

  constructor(
    private readonly server: AgentServer,
    private readonly o: AgentServerOptions,
    private readonly input: NodeJS.ReadableStream,
    private readonly output: NodeJS.WritableStream,
  ) {
    this.max = o.maxFramePayload ?? DEFAULT_MAX_PAYLOAD;
    this.maxInFlight = o.maxInFlight ?? MAX_IN_FLIGHT;
    this.writer = new FrameWriter(output, this.max);
  }

  private log(line: string): void {
    this.server.logLine(line);
  }

  async run(): Promise<void> {
    let fatal: unknown = null;
    // a broken output (client gone) must not crash the agent: the read side ends too
    this.output.on('error', (e: Error) => this.log(`output closed: ${e.message}`));
    try {
      for await (const frame of readFrames(this.input as AsyncIterable<unknown>, this.max)) {
        this.delivering = true;
        try {
          await this.onFrame(frame);
        } finally {
          this.delivering = false;
          this.lastInput = Date.now();
        }
        if (this.closing || this.silenced) break;
      }
    } catch (e) {
      fatal = e;
    }
    if (this.silenced) fatal = this.silenced;
    if (fatal) this.log(`session closed with an error: ${(fatal as Error).message}`);
    await this.cleanup(fatal);
  }

  private async cleanup(fatal: unknown): Promise<void> {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
    if (this.silenceWatch) clearInterval(this.silenceWatch);
    this.silenceWatch = null;
    // a silenced session tells its uploads why (the client reads it when it wakes up)
    const gone = this.silenced ?? new TransportError('the client went away before the upload finished');
    for (const q of this.uploads.values()) q.fail(gone);
    for (const d of this.downloads.values()) d.cancelled = true;
    await Promise.allSettled([...this.inflight]);
    if (this.fs) {
      for (const tx of this.openTx.keys()) {
        const report = await this.fs.rollback(tx).catch((e: unknown) => ({ removed: [], leftovers: [{ name: tx, error: String(e) }] }));
        this.log(`rolled back abandoned transaction ${tx}: removed ${report.removed.length}, leftovers ${report.leftovers.length}`);
      }
    }
    this.openTx.clear();
    await this.lock?.release().catch((e: unknown) => this.log(`could not release the lock: ${String(e)}`));
    if (fatal && !this.writer.closed) {
      const err = fatal instanceof DsgError ? fatal : new ProtocolError(String((fatal as Error)?.message ?? fatal));
      await Promise.race([
        this.writer.sendJson(FrameKind.RESPONSE, 0, { ok: false, error: errorToJSON(err) }).catch(() => {}),
        new Promise((r) => setTimeout(r, 2000).unref()),
      ]);
    }
    try {
      this.output.end();
    } catch {
      /* already closed */
    }
  }

  private async onFrame(f: Frame): Promise<void> {
    switch (f.kind) {
      case FrameKind.REQUEST:
        return this.onRequest(f);
      case FrameKind.DATA: {
        this.knownId(f.id);
        const q = this.uploads.get(f.id);
        if (q) await q.push(f.payload);
        return;
      }
      case FrameKind.END:
        this.knownId(f.id);
        this.uploads.get(f.id)?.end();
        this.uploads.delete(f.id);
        return;
      case FrameKind.PING:
        if (!this.clientPings || f.id !== 0) throw new ProtocolError('a PING from a client that did not offer PINGs in hello, or not on id 0');
        return;
      case FrameKind.ABORT: {
        this.knownId(f.id);
        const q = this.uploads.get(f.id);
        if (q) {
          const e = parseJson(f.payload, 'abort');
          q.fail(errorFromJSON(e as unknown as SerializedError));
          this.uploads.delete(f.id);
        }
        const d = this.downloads.get(f.id);
        if (d) d.cancelled = true;
        return;
      }
      default:
        throw new ProtocolError(`a client may not send frames of kind ${f.kind}`);
    }
  }

  private knownId(id: number): void {
    if (id === 0 || id > this.maxId) throw new ProtocolError(`stream frame for request ${id}, which was never sent`);
  }

  private onRequest(f: Frame): void {
    if (f.id <= this.maxId) throw new ProtocolError(`request id ${f.id} is not above the last one (${this.maxId})`);
    this.maxId = f.id;
    if (this.inflight.size >= this.maxInFlight) {
      throw new ProtocolError(`more than ${this.maxInFlight} requests in flight in one session; the agent closed it`);
    }
    const msg = parseJson(f.payload, 'request');
    const op = msg['op'];
    if (typeof op !== 'string') throw new ProtocolError('request without "op"');
    if (!this.greeted && op !== 'hello') throw new ProtocolError(`first request must be hello, got ${JSON.stringify(op).slice(0, 40)}`);
    if (op === 'hello') return this.hello(f.id, msg);
    if (op === 'writeFile') return this.startUpload(f.id, msg);
    this.track(f.id, () => this.handle(op, msg, f.id));
  }

  private hello(id: number, msg: Record<string, unknown>): void {
    if (this.greeted) throw new ProtocolError('hello sent twice');
    const theirs = P.str(msg, 'protocol', 20);
    const mine = P.PROTOCOL_VERSION;
    if (P.majorOf(theirs) !== P.majorOf(mine)) {
      const err = new TransportError(`protocol version mismatch: the client speaks ${theirs}, this agent speaks ${mine}`, {
        recoveryHint: 'Install matching versions of dsg and dsg-agent (copy the agent bundle of this dsg release to the server).',
      });
      this.closing = true;
      this.track(id, () => Promise.reject(err));
      return;
    }
    this.greeted = true;
    const heartbeatMs = this.startHeartbeat(msg['heartbeatMs']);
    const clientPingMs = msg['pings'] === true ? this.watchSilence() : null;
    this.track(id, () =>
      Promise.resolve({
        result: {
          protocol: mine,
          agent: this.o.agentVersion ?? 'unknown',
          host: hostname(),
          pid: process.pid,
          maxFramePayload: this.max,
          ...(heartbeatMs ? { heartbeatMs } : {}),
          ...(clientPingMs ? { clientPingMs } : {}),
        },
      }),
    );
  }

  /**
   * The client asked for a PING every `ms` (hello.heartbeatMs): its proof
   * that this agent still runs while a long operation (a commit on a busy
   * pool) sends nothing else. At most one PING waits for the output at a
   * time, so a client that stopped reading never makes them pile up.
   */
  private startHeartbeat(requested: unknown): number | null {
    if (typeof requested !== 'number' || !Number.isFinite(requested)) return null;
    const ms = Math.min(60_000, Math.max(100, Math.round(requested)));
    let waiting = false;
    this.heartbeat = setInterval(() => {
      if (waiting || this.writer.closed) return;
      waiting = true;
      this.writer.send(FrameKind.PING, 0).then(
        () => (waiting = false),
        () => (waiting = false),
      );
    }, ms);
    this.heartbeat.unref();
    return ms;
  }

  /**
   * Lock liveness: the client offered PINGs, so a client that sends nothing
   * at all for `clientSilenceMs` is gone (stopped, frozen, its host off the
   * network behind a live connection). End the session: its transaction is
   * rolled back and its lock released, as for any session end. A tick that
   * comes late means this process was busy (frames may be waiting unread):
   * the clock restarts. Returns the PING interval asked of the client.
   */
  private watchSilence(): number | null {
    const silence = this.o.clientSilenceMs ?? CLIENT_SILENCE_MS;
    if (!(silence > 0)) return null;
    this.clientPings = true;
    const tick = Math.max(25, Math.min(1000, Math.floor(silence / 8)));
    let lastTick = Date.now();
    this.lastInput = Date.now();
    this.silenceWatch = setInterval(() => {
      const now = Date.now();
      if (now - lastTick > tick * 4) this.lastInput = now;
      lastTick = now;
      if (this.delivering || this.silenced || now - this.lastInput < silence) return;
      this.silenced = new TransportError(`the client sent nothing for ${(silence / 1000).toFixed(1)} s; the agent ended the session (rolled back, unlocked)`, {
        recoveryHint: 'The client stopped or lost its connection; run the command again.',
      });
      this.log(this.silenced.message);
      const input = this.input as Partial<{ destroy(e?: Error): void }>;
      input.destroy?.();
    }, tick);
    this.silenceWatch.unref();
    return Math.max(50, Math.floor(silence / 4));
  }

  private track(id: number, fn: () => Promise<HandlerResult>): void {
    const p = (async () => {
      let out: HandlerResult;
      try {
        out = await fn();
      } catch (e) {
        if (!(e instanceof DsgError)) this.log(`request ${id} failed: ${(e as Error)?.stack ?? String(e)}`);
        await this.writer.sendJson(FrameKind.RESPONSE, id, { ok: false, error: errorToJSON(repositoryError(e)) });
        return;
      }
      if ('result' in out) {
        await this.writer.sendJson(FrameKind.RESPONSE, id, { ok: true, result: out.result ?? null });
        return;
      }
      if (!out.stream) {
        await this.writer.sendJson(FrameKind.RESPONSE, id, { ok: true, result: { found: false } });
        return;
      }
      const state = { cancelled: false };
      this.downloads.set(id, state);
      try {
        await this.writer.sendJson(FrameKind.RESPONSE, id, { ok: true, result: { found: true } });
        await this.writer.sendStream(id, out.stream, () => state.cancelled || this.writer.closed);
      } catch (e) {
        if (!this.writer.closed) await this.writer.sendJson(FrameKind.ABORT, id, errorToJSON(repositoryError(e)));
      } finally {
        this.downloads.delete(id);
      }
    })().catch((e: unknown) => this.log(`could not answer request ${id}: ${String(e)}`));
    this.inflight.add(p);
    void p.finally(() => this.inflight.delete(p));
  }

  private repo(): ServedFilesystem {
    if (!this.fs) throw new ValidationError('no repository is open in this session', {}, { recoveryHint: 'Send open first.' });
    return this.fs;
  }

  private requireLock(op: string): void {
    if (!this.lock?.isHeld) {
      throw new DsgError('NOT_LOCKED', `${op} needs the repository lock, which this session does not hold`, {
        recoveryHint: 'Lock the repository before starting a transaction.',
      });
    }
  }

  private openTxWork(tx: TransactionId): string {
    const work = this.openTx.get(tx);
    if (work === undefined) {
      throw new ValidationError(`transaction ${tx} is not open in this session`, { field: 'tx' }, { recoveryHint: 'Begin the transaction first.' });
    }
    return work;
  }

  /**
   * The agent's own check, under the session mutex, before the backend sees
   * the path: no existing parent in the work area is a symlink or a file
   * (resolveBeneath). The backends check again under their own lock.
   */
  private async confineToWork(tx: TransactionId, rel: string): Promise<void> {
    const work = this.openTxWork(tx);
    if (!work || !isAbsolute(work)) return;
    try {
      await access(work);
    } catch {
      return;
    }
    await resolveBeneath(work, rel);
  }

  /**
   * The physical half of the link gate (assertSafeLinkTarget leaves no `..`
   * after a name): resolved against the work area on disk, every existing
   * component the target passes through must be a real directory — a
   * target traversing another link (even one an older agent let in) or a
   * file is refused.
   */
  private async linkTargetOnDisk(tx: TransactionId, rel: string, target: string): Promise<void> {
    const work = this.openTxWork(tx);
    if (!work || !isAbsolute(work)) return;
    try {
      await access(work);
    } catch {
      return;
    }
    await assertLinkTargetOnDisk(work, rel, target);
  }

  private refuseIfReadOnly(op: string): void {
    if (this.o.readOnly && MUTATING.has(op)) {
      throw new DsgError('READ_ONLY', `this agent is read-only (dsg-agent serve --read-only): ${op} is refused`, {
        recoveryHint: 'Use a login whose agent command is not --read-only to sync; this one can only read (clone, log, status, snapfetch).',
      });
    }
  }

  private startUpload(id: number, msg: Record<string, unknown>): void {
    // the queue must exist before the next frame (its first DATA) is read
    const q = new ByteQueue();
    this.uploads.set(id, q);
    this.track(id, async () => {
      let held: (() => void) | null = null;
      let settled = false;
      try {
        this.refuseIfReadOnly('writeFile');
        const fs = this.repo();
        this.requireLock('writeFile');
        const tx = P.tx(msg);
        const path = P.path(msg);
        const expected = expectedFile(msg['expected']);
        held = await this.mutex.acquireShared();
        this.requireLock('writeFile');
        await this.confineToWork(tx, path);
        // Held (shared with other uploads) until the backend pulls the first byte
        // (its check → mkdir → open are done by then), released while the data
        // flows, taken again once the data has ended (or failed) for the backend's
        // hash check → rename or cleanup.
        const mutex = this.mutex;
        const data: ByteStream = (async function* () {
          held?.();
          held = null;
          try {
            yield* q;
          } finally {
            if (!settled) {
              const r = await mutex.acquireShared();
              if (settled) r();
              else held = r;
            }
          }
        })();
        return { result: await fs.writeFile(tx, path, data, expected) };
      } finally {
        settled = true;
        held?.();
        q.discard();
        this.uploads.delete(id);
      }
    });
  }

  private async handle(op: string, msg: Record<string, unknown>, _id: number): Promise<HandlerResult> {
    if (!(P.OPS as readonly string[]).includes(op)) {
      throw new DsgError('UNKNOWN_OP', `this agent does not know the operation ${JSON.stringify(op).slice(0, 40)}`, {
        recoveryHint: 'Install matching versions of dsg and dsg-agent.',
      });
    }
    this.refuseIfReadOnly(op);
    if (!BEFORE_OPEN.has(op)) this.repo();
    if (NEEDS_LOCK.has(op)) this.requireLock(op);
    if (SERIALIZED.has(op)) {
      return this.mutex.run(async () => {
        // the lock may have gone while this request waited its turn
        if (NEEDS_LOCK.has(op)) this.requireLock(op);
        return this.dispatch(op, msg);
      });
    }
    return this.dispatch(op, msg);
  }

  private async dispatch(op: string, msg: Record<string, unknown>): Promise<HandlerResult> {
    switch (op) {
      case 'stats':
        return { result: { ...memoryStats(), pid: process.pid } };
      case 'listRepositories': {
        const all = await this.o.host.list();
        const only = this.o.restrictToRepository;
        return { result: only === undefined ? all : all.filter((n) => n === only) };
      }
      case 'open':
        return { result: await this.open(msg) };
      case 'lock': {
        const name = this.repoName!;
        this.lock ??= new RepositoryLock(await this.lockFile(name), this.o.lock);
        const { tookOver } = await this.acquireWaitingForRecovery(this.lock, P.holder(msg));
        if (tookOver) {
          this.log(`took over a stale lock on ${name}; recovering`);
          await this.recoverQuietly();
        }
        return { result: { tookOver } };
      }
      case 'unlock':
        if (this.openTx.size) {
          throw new ValidationError('cannot unlock while a transaction is open', {}, { recoveryHint: 'Commit or roll back first.' });
        }
        await this.lock?.release();
        return { result: null };
      case 'exists':
        return { result: await this.fs!.exists() };
      case 'readFile':
        return { stream: await this.fs!.readFile(P.path(msg)) };
      case 'begin': {
        const tx = P.tx(msg);
        if (this.openTx.has(tx)) throw new ValidationError(`transaction ${tx} is already open`, { field: 'tx' });
        const r = await this.fs!.begin(tx);
        this.openTx.set(tx, r.workPath);
        return { result: r };
      }
      case 'commit': {
        const tx = P.tx(msg);
        this.openTxWork(tx);
        await this.lock!.verify(); // the point of no return follows: the lock must still be ours
        await this.fs!.commit(tx, snapshotInfo(msg['snapshot']));
        this.openTx.delete(tx);
        return { result: null };
      }
      case 'rollback': {
        const tx = P.tx(msg);
        const r = await this.fs!.rollback(tx);
        this.openTx.delete(tx);
        return { result: r };
      }
      case 'writeLink': {
        const tx = P.tx(msg);
        const path = P.path(msg);
        const target = P.str(msg, 'target');
        assertSafeLinkTarget(path, target);
        await this.confineToWork(tx, path);
        await this.linkTargetOnDisk(tx, path, target);
        await this.fs!.writeLink(tx, path, target);
        return { result: null };
      }
      case 'deleteFile': {
        const tx = P.tx(msg);
        const path = P.path(msg);
        await this.confineToWork(tx, path);
        await this.fs!.deleteFile(tx, path);
        return { result: null };
      }
      case 'listSnapshots':
        return { result: await this.fs!.listSnapshots() };
      case 'readSnapshotFile':
        return { stream: await this.fs!.readSnapshotFile(P.assertSnapshotId(msg['snapshotId']), P.path(msg)) };
      case 'mountSnapshot': {
        const at = msg['at'] === undefined ? undefined : P.str(msg, 'at');
        if (at !== undefined && !this.o.clientMountpoints) {
          throw new ValidationError('the agent chooses where snapshots are mounted; "at" is not accepted over the wire', { field: 'at' }, {
            recoveryHint: 'Leave out --mountpoint: the reply names the place the agent chose.',
          });
        }
        if (!this.fs!.mountSnapshot) throw unsupported('mount snapshots');
        return { result: await this.fs!.mountSnapshot(P.assertSnapshotId(msg['snapshotId']), at) };
      }
      case 'unmountSnapshot': {
        // Any session may undo a snapmount (it outlives the command that made it); the
        // backend only ever removes a view of THIS repository (ZFS: one of its mount
        // clones, posix: nothing) and refuses every other path with NotFoundError.
        const at = P.str(msg, 'at');
        if (!isAbsolute(at) || normalize(at) !== at || at.includes('\0') || at === '/') {
          throw new ValidationError(`refused to unmount ${JSON.stringify(at.slice(0, 200))}: not a normalized absolute path`, { field: 'at' });
        }
        if (!this.fs!.unmountSnapshot) throw unsupported('unmount snapshots');
        await this.fs!.unmountSnapshot(at);
        return { result: null };
      }
      case 'recover':
        return { result: await this.fs!.recover() };
      default:
        throw new ProtocolError(`operation ${op} is not valid here`);
    }
  }

  private async open(msg: Record<string, unknown>): Promise<{ repo: string; layout: string | null }> {
    if (this.fs) throw new ValidationError('a repository is already open in this session', { field: 'repo' });
    const name = P.assertRepoName(msg['repo']);
    const only = this.o.restrictToRepository;
    if (only !== undefined && name !== only) {
      throw new DsgError('RESTRICTED', `this agent serves only the repository ${JSON.stringify(only)} (dsg-agent serve --restrict-to-repository); ${JSON.stringify(name)} is refused`, {
        recoveryHint: `Use the repository name ${JSON.stringify(only)}, or a login whose agent command serves ${JSON.stringify(name)}.`,
      });
    }
    this.fs = this.o.host.open(name);
    this.repoName = name;
    if ((this.o.recoverOnOpen ?? true) && !this.o.readOnly) await this.recoverIfFree(name);
    return { repo: name, layout: (await this.fs.repositoryLayout?.()) ?? null };
  }

  /** NAME's lock file, asked from the host once per session: the recovery at open and every lock of the session use the same file. */
  private async lockFile(name: string): Promise<string> {
    this.lockPath ??= await this.o.host.lockFile(name); // open and lock run under the session mutex: no race
    return this.lockPath;
  }

  /** Opportunistic recovery at open: only when nobody holds the lock, and only where the repository has a place on disk. */
  private async recoverIfFree(name: string): Promise<void> {
    const file = await this.lockFile(name);
    try {
      await access(dirname(file));
    } catch {
      return;
    }
    const probe = new RepositoryLock(file, this.o.lock);
    try {
      await probe.acquire({ user: RECOVERY_USER, host: hostname(), pid: process.pid, since: new Date().toISOString() });
    } catch (e) {
      if (e instanceof LockedError) return;
      throw e;
    }
    try {
      await this.recoverQuietly();
    } finally {
      await probe.release();
    }
  }

  /** Another session's short recovery at open holds the lock for a moment: wait for it rather than fail. */
  private async acquireWaitingForRecovery(lock: RepositoryLock, h: LockHolder): Promise<{ tookOver: boolean }> {
    for (let i = 0; ; i++) {
      try {
        return await lock.acquire(h);
      } catch (e) {
        if (!(e instanceof LockedError) || e.holder.user !== RECOVERY_USER || i >= 150) throw e;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }

  private async recoverQuietly(): Promise<void> {
    try {
      const r = await this.fs!.recover();
      if (r.transactions.length || r.leftovers.length) {
        this.log(`recovered ${this.repoName}: ${r.transactions.map((t) => `${t.transactionId} ${t.action}`).join(', ')}; leftovers ${r.leftovers.length}`);
      }
    } catch (e) {
      this.log(`recovery of ${this.repoName} failed: ${String(e)}`);
    }
  }
}

function expectedFile(v: unknown): ExpectedFile {
  if (typeof v !== 'object' || v === null) throw new ProtocolError('writeFile needs "expected"');
  const o = v as Record<string, unknown>;
  const hash = o['hash'];
  if (typeof hash !== 'string' || !/^[0-9a-f]{1,128}$/.test(hash)) throw new ValidationError('expected.hash must be lowercase hex', { field: 'expected.hash' });
  const out: ExpectedFile = { hash };
  if (o['size'] !== undefined) {
    if (typeof o['size'] !== 'number' || !Number.isSafeInteger(o['size']) || o['size'] < 0) throw new ValidationError('expected.size must be a non-negative integer', { field: 'expected.size' });
    out.size = o['size'];
  }
  if (o['mtime'] !== undefined) {
    if (typeof o['mtime'] !== 'string' || Number.isNaN(Date.parse(o['mtime']))) throw new ValidationError('expected.mtime must be an ISO 8601 time', { field: 'expected.mtime' });
    out.mtime = o['mtime'];
  }
  return out;
}

function snapshotInfo(v: unknown): SnapshotInfo {
  if (typeof v !== 'object' || v === null) throw new ProtocolError('commit needs "snapshot"');
  const o = v as Record<string, unknown>;
  return {
    snapshotId: P.assertSnapshotId(o['snapshotId']),
    message: P.str(o, 'message', 1 << 16),
    manifestHash: P.str(o, 'manifestHash', 200),
    user: P.str(o, 'user', 320),
    createdAt: P.str(o, 'createdAt', 64),
  };
}
