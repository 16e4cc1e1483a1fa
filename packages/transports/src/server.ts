import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { access } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, isAbsolute } from 'node:path';
import {
  DsgError,
  LockedError,
  Mutex,
  NotFoundError,
  TransportError,
  ValidationError,
  assertLinkTargetOnDisk,
  errorFromJSON,
  errorToJSON,
  resolveBeneath,
  writeFilesEach,
  type ByteStream,
  type SizedPath,
  type ExpectedFile,
  type FileDigest,
  type HasherFactory,
  type LockHolder,
  type RemoteFilesystem,
  type RepositoryHost,
  type SerializedError,
  type SnapshotMounter,
  type TransactionId,
  retryWhile,
} from '@dsg/contracts';
import { ByteQueue } from './byte-queue.js';
import { batchSource, filesBackToBack } from './files-back-to-back.js';
import {
  DEFAULT_MAX_PAYLOAD,
  FrameKind,
  FrameWriter,
  ProtocolError,
  parseJson,
  readFrames,
  type Frame,
} from './frames.js';
import { RepositoryLock, type LockOptions } from './lock.js';
import {
  OP_TABLE,
  opSpec,
  type AgentStats,
  type SessionTransfer,
  type ArgsOf,
  type HelloReply,
  type Op,
  type ResultOf,
  type StreamOf,
} from './ops.js';
import { detectRepositoryAt, type RepositoryProbes } from './detect.js';
import { PROTOCOL_VERSION, majorOf, type Fields } from './protocol.js';

/**
 * A system error of the repository's disk as the client should see it: what
 * happened ON THE REPOSITORY HOST and what to do. A plain Error would cross
 * the wire as INTERNAL with "run again with --debug" — useless for a full disk.
 */
export function repositoryError(error: unknown): unknown {
  if (error instanceof DsgError || !(error instanceof Error)) return error;
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new DsgError('NO_SPACE', `no space left in the repository on ${hostname()}: ${error.message}`, {
      recoveryHint: 'Free space on the repository host (or grow its pool or quota), then run the command again.',
      cause: error,
    });
  }
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
    return new DsgError('PERMISSION', `the repository on ${hostname()} refused the operation: ${error.message}`, {
      recoveryHint:
        'Check the ownership and permissions of the repository on its host (the agent runs as your ssh user).',
      cause: error,
    });
  }
  return error;
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
  /**
   * `detectRepository`: what `<root>/<name>` is, under this agent's own root
   * (`root`: its posix root or zfs mountpoint) with the host's probes.
   * Absent: every name answers `type: null`.
   */
  detect?: { root: string; probes: RepositoryProbes };
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

/** `files`: a batched download counts its files itself (the session's filesSent) */
type HandlerResult = { result: unknown } | { stream: ByteStream | null; files?: 'counted' };

/** The lock holder name of the agent's own recovery at open. */
const RECOVERY_USER = 'dsg-agent (recovery at open)';

/** The ops the generic dispatch serves: hello is the session's handshake (Session.hello). */
type Served = Exclude<Op, 'hello'>;

/** What the agent does for one op, given the fields its parser returned (and an upload's data). */
type Handler<K extends Served> =
  StreamOf<K> extends 'upload'
    ? (args: ArgsOf<K>, data: ByteStream) => Promise<ResultOf<K>>
    : (args: ArgsOf<K>) => Promise<ResultOf<K>>;
type Handlers = { [K in Served]: Handler<K> };

/** Peak and current resident memory, from /proc where there is one. */
export function memoryStats(): Omit<AgentStats, 'pid'> {
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
 * SHA-256 and size of a file the backend streams (null: absent), for
 * `fileDigest`: the backend's own readFile, so the path passes the very
 * checks a download passes, and the bytes never leave the agent.
 */
async function digestOf(s: ByteStream | null): Promise<FileDigest | null> {
  if (!s) return null;
  const h = createHash('sha256');
  let size = 0;
  for await (const chunk of s) {
    size += chunk.byteLength;
    // unlike a download, nothing throttles this read: a client could keep the
    // agent hashing big files for nothing, so only manifest-sized ones are hashed
    if (size > DIGEST_MAX_BYTES) {
      throw new ValidationError(
        `fileDigest hashes files of at most ${DIGEST_MAX_BYTES} bytes (the largest manifest)`,
        { field: 'path' },
        { recoveryHint: 'Read the file with readFile instead.' },
      );
    }
    h.update(chunk);
  }
  return { sha256: h.digest('hex'), size };
}

/** The largest file fileDigest hashes: a manifest's bound (256 MiB, ~1.3M entries). */
export const DIGEST_MAX_BYTES = 256 * 1024 * 1024;

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
  /** work areas of open transactions found on disk (workOnDisk); forgotten when their transaction ends */
  private readonly workSeen = new Set<string>();
  private readonly uploads = new Map<number, ByteQueue>();
  private readonly downloads = new Map<number, { cancelled: boolean }>();
  /** file content this session moved (the `stats` op and the session's last log line) */
  private readonly transfer: SessionTransfer = {
    bytesReceived: 0,
    filesReceived: 0,
    bytesSent: 0,
    filesSent: 0,
    bytesCopied: 0,
    filesCopied: 0,
    uploadRequests: 0,
    downloadRequests: 0,
  };
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
    // An ended session answers nothing more: a sender waiting for a client that stopped reading
    // (a download to a stopped dsg) would otherwise keep the session, its transaction and its lock.
    // A session whose client simply finished still answers what it asked.
    if (fatal) this.writer.markClosed(gone);
    await Promise.allSettled([...this.inflight]);
    if (this.fs) {
      for (const tx of this.openTx.keys()) {
        const report = await this.fs
          .rollback(tx)
          .catch((e: unknown) => ({ removed: [], leftovers: [{ name: tx, error: String(e) }] }));
        this.log(
          `rolled back abandoned transaction ${tx}: removed ${report.removed.length}, leftovers ${report.leftovers.length}`,
        );
      }
    }
    this.openTx.clear();
    this.workSeen.clear();
    const t = this.transfer;
    if (t.bytesReceived || t.bytesSent || t.filesCopied)
      this.log(
        `session moved: received ${t.bytesReceived} bytes (${t.filesReceived} files), sent ${t.bytesSent} bytes (${t.filesSent} files), copied ${t.bytesCopied} bytes on the server (${t.filesCopied} files); requests: ${t.uploadRequests} uploads, ${t.downloadRequests} downloads`,
      );
    await this.lock?.release().catch((e: unknown) => this.log(`could not release the lock: ${String(e)}`));
    if (fatal) {
      const err = fatal instanceof DsgError ? fatal : new ProtocolError(String((fatal as Error)?.message ?? fatal));
      try {
        this.writer.sendLast(FrameKind.RESPONSE, 0, { ok: false, error: errorToJSON(err) });
      } catch {
        /* the output is gone: nobody to tell */
      }
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
        if (q) {
          this.transfer.bytesReceived += f.payload.length;
          await q.push(f.payload);
        }
        return;
      }
      case FrameKind.END:
        this.knownId(f.id);
        this.uploads.get(f.id)?.end();
        this.uploads.delete(f.id);
        return;
      case FrameKind.PING:
        if (!this.clientPings || f.id !== 0)
          throw new ProtocolError('a PING from a client that did not offer PINGs in hello, or not on id 0');
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
    if (!this.greeted && op !== 'hello')
      throw new ProtocolError(`first request must be hello, got ${JSON.stringify(op).slice(0, 40)}`);
    if (op === 'hello') return this.hello(f.id, msg);
    const spec = opSpec(op);
    if (spec?.stream === 'upload') return this.startUpload(f.id, op as Served, msg);
    this.track(f.id, () => this.handle(op, msg));
  }

  /** The handshake: a malformed hello, or a second one, ends the session. */
  private hello(id: number, msg: Fields): void {
    if (this.greeted) throw new ProtocolError('hello sent twice');
    const args = OP_TABLE.hello.parse(msg);
    const theirs = args.protocol;
    const mine = PROTOCOL_VERSION;
    if (majorOf(theirs) !== majorOf(mine)) {
      const err = new TransportError(
        `protocol version mismatch: the client speaks ${theirs}, this agent speaks ${mine}`,
        {
          recoveryHint:
            'Install matching versions of dsg and dsg-agent (copy the agent bundle of this dsg release to the server).',
        },
      );
      this.closing = true;
      this.track(id, () => Promise.reject(err));
      return;
    }
    this.greeted = true;
    const heartbeatMs = this.startHeartbeat(args.heartbeatMs);
    const clientPingMs = args.pings === true ? this.watchSilence() : null;
    const reply: HelloReply = {
      protocol: mine,
      agent: this.o.agentVersion ?? 'unknown',
      host: hostname(),
      pid: process.pid,
      maxFramePayload: this.max,
      ...(heartbeatMs ? { heartbeatMs } : {}),
      ...(clientPingMs ? { clientPingMs } : {}),
    };
    this.track(id, () => Promise.resolve({ result: reply }));
  }

  /**
   * The client asked for a PING every `ms` (hello.heartbeatMs): its proof
   * that this agent still runs while a long operation (a commit on a busy
   * pool) sends nothing else. At most one PING waits for the output at a
   * time, so a client that stopped reading never makes them pile up.
   */
  private startHeartbeat(requested: number | undefined): number | null {
    if (requested === undefined) return null;
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
      this.silenced = new TransportError(
        `the client sent nothing for ${(silence / 1000).toFixed(1)} s; the agent ended the session (rolled back, unlocked)`,
        {
          recoveryHint: 'The client stopped or lost its connection; run the command again.',
        },
      );
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
      this.transfer.downloadRequests++;
      try {
        await this.writer.sendJson(FrameKind.RESPONSE, id, { ok: true, result: { found: true } });
        const counted = async function* (stream: ByteStream, into: SessionTransfer): ByteStream {
          for await (const chunk of stream) {
            into.bytesSent += chunk.length;
            yield chunk;
          }
        };
        await this.writer.sendStream(
          id,
          counted(out.stream, this.transfer),
          () => state.cancelled || this.writer.closed,
        );
        if (!state.cancelled && !this.writer.closed && !out.files) this.transfer.filesSent++;
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
    if (!this.fs)
      throw new ValidationError('no repository is open in this session', {}, { recoveryHint: 'Send open first.' });
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
      throw new NotFoundError(`transaction ${tx} is not open in this session`, {
        recoveryHint: 'Begin the transaction first (it may have been rolled back).',
      });
    }
    return work;
  }

  /**
   * The agent's own check, under the session mutex, before the backend sees
   * the path: no existing parent in the work area is a symlink or a file
   * (resolveBeneath). The backends check again under their own lock.
   */
  private async confineToWork(tx: TransactionId, rel: string): Promise<void> {
    const work = await this.workOnDisk(tx);
    if (work !== null) await resolveBeneath(work, rel);
  }

  /**
   * The open transaction's work area when it is a directory on this host
   * (null for a backend whose work area is not: nothing to check there).
   * Found once per transaction: it stays until the transaction ends, and an
   * `access` per upload was 2 % of the agent's time in a 10k-file sync.
   */
  private async workOnDisk(tx: TransactionId): Promise<string | null> {
    const work = this.openTxWork(tx);
    if (this.workSeen.has(work)) return work;
    if (!work || !isAbsolute(work)) return null;
    try {
      await access(work);
    } catch {
      return null;
    }
    this.workSeen.add(work);
    return work;
  }

  /**
   * The physical half of the link gate (assertSafeLinkTarget leaves no `..`
   * after a name): resolved against the work area on disk, every existing
   * component the target passes through must be a real directory — a
   * target traversing another link (even one an older agent let in) or a
   * file is refused.
   */
  private async linkTargetOnDisk(tx: TransactionId, rel: string, target: string): Promise<void> {
    const work = await this.workOnDisk(tx);
    if (work !== null) await assertLinkTargetOnDisk(work, rel, target);
  }

  /** The table's gates, in this order: read-only, open, lock (the session mutex and the field parser come after). */
  private gate(op: Served): void {
    const spec = OP_TABLE[op];
    if (this.o.readOnly && spec.mutating) {
      throw new DsgError('READ_ONLY', `this agent is read-only (dsg-agent serve --read-only): ${op} is refused`, {
        recoveryHint:
          'Use a login whose agent command is not --read-only to sync; this one can only read (clone, log, status, snapfetch).',
      });
    }
    if (!spec.beforeOpen) this.repo();
    if (spec.needsLock) this.requireLock(op);
  }

  /**
   * An upload: gates and fields, then the handler with the request's data.
   * Each file it writes runs through `sharedAround` (the session mutex).
   */
  private startUpload(id: number, op: Served, msg: Fields): void {
    // the queue must exist before the next frame (its first DATA) is read
    const q = new ByteQueue();
    this.uploads.set(id, q);
    this.transfer.uploadRequests++;
    this.track(id, async () => {
      try {
        this.gate(op);
        const args = OP_TABLE[op].parse(msg);
        return { result: await (this.handlers[op] as (a: unknown, d: ByteStream) => Promise<unknown>)(args, q) };
      } finally {
        q.discard();
        this.uploads.delete(id);
      }
    });
  }

  /**
   * One file of an upload under the session mutex, SHARED with other
   * uploads: held for `fn`'s path steps until the backend pulls the first
   * byte (its check → mkdir → open are done by then), released while the
   * data flows, taken again once the data has ended (or failed) for the
   * backend's hash check → rename or cleanup. The repository lock is
   * checked once the mutex is held (it may have gone while this waited).
   */
  private async sharedAround<T>(op: string, source: ByteStream, fn: (data: ByteStream) => Promise<T>): Promise<T> {
    let held: (() => void) | null = await this.mutex.acquireShared();
    let settled = false;
    const mutex = this.mutex;
    const data: ByteStream = (async function* () {
      held?.();
      held = null;
      try {
        yield* source;
      } finally {
        if (!settled) {
          const r = await mutex.acquireShared();
          if (settled) r();
          else held = r;
        }
      }
    })();
    try {
      this.requireLock(op);
      return await fn(data);
    } finally {
      settled = true;
      held?.();
    }
  }

  private async handle(op: string, msg: Fields): Promise<HandlerResult> {
    const spec = opSpec(op);
    if (!spec || op === 'hello') {
      throw new DsgError('UNKNOWN_OP', `this agent does not know the operation ${JSON.stringify(op).slice(0, 40)}`, {
        recoveryHint: 'Install matching versions of dsg and dsg-agent.',
      });
    }
    const served = op as Served;
    this.gate(served);
    if (!spec.exclusive) return this.dispatch(served, msg);
    return this.mutex.run(async () => {
      // the lock may have gone while this request waited its turn
      if (spec.needsLock) this.requireLock(op);
      return this.dispatch(served, msg);
    });
  }

  private async dispatch(op: Served, msg: Fields): Promise<HandlerResult> {
    const spec = OP_TABLE[op];
    const value = await (this.handlers[op] as (a: unknown) => Promise<unknown>)(spec.parse(msg));
    if (spec.stream !== 'download') return { result: value };
    return op === 'readFiles'
      ? { stream: value as ByteStream, files: 'counted' }
      : { stream: value as ByteStream | null };
  }

  /** What each op does once its gates passed and its fields parsed (the compiler asks for one per op of OP_TABLE). */
  private readonly handlers: Handlers = {
    stats: () => Promise.resolve({ ...memoryStats(), pid: process.pid, session: { ...this.transfer } }),
    listRepositories: async ({ details }) => {
      const only = this.o.restrictToRepository;
      if (details) {
        // a host that cannot tell heads and markers (posix) gives names: unknown, as from an older agent
        const host = this.o.host;
        const all = host.summaries ? await host.summaries() : (await host.list()).map((name) => ({ name }));
        return { repositories: only === undefined ? all : all.filter((r) => r.name === only) };
      }
      const all = await this.o.host.list();
      return only === undefined ? all : all.filter((n) => n === only);
    },
    detectRepository: async ({ name, sudo }) => {
      this.refuseRestricted(name);
      const d = this.o.detect;
      if (!d) return { type: null, reason: 'this agent cannot detect repositories' };
      return detectRepositoryAt(d.root, name, d.probes, { sudo });
    },
    open: async ({ repo }) => this.open(repo),
    lock: async ({ holder }) => {
      const name = this.repoName!;
      this.lock ??= new RepositoryLock(await this.lockFile(name), this.o.lock);
      const { tookOver } = await this.acquireWaitingForRecovery(this.lock, holder);
      if (tookOver) {
        this.log(`took over a stale lock on ${name}; recovering`);
        await this.recoverQuietly();
      }
      return { tookOver };
    },
    unlock: async () => {
      if (this.openTx.size) {
        throw new ValidationError(
          'cannot unlock while a transaction is open',
          {},
          { recoveryHint: 'Commit or roll back first.' },
        );
      }
      await this.lock?.release();
      return null;
    },
    exists: async () => this.fs!.exists(),
    readFile: async ({ path }) => this.fs!.readFile(path),
    fileDigest: async ({ path }) => digestOf(await this.fs!.readFile(path)),
    begin: async ({ tx }) => {
      if (this.openTx.has(tx))
        throw new ValidationError(`transaction ${tx} is already open`, { field: 'tx' }, { code: 'TX_EXISTS' });
      const r = await this.fs!.begin(tx);
      this.openTx.set(tx, r.workPath);
      return r;
    },
    commit: async ({ tx, snapshot }) => {
      this.openTxWork(tx);
      await this.lock!.verify(); // the point of no return follows: the lock must still be ours
      await this.fs!.commit(tx, snapshot);
      this.workSeen.delete(this.openTx.get(tx)!);
      this.openTx.delete(tx);
      return null;
    },
    rollback: async ({ tx }) => {
      const r = await this.fs!.rollback(tx);
      this.workSeen.delete(this.openTx.get(tx) ?? '');
      this.openTx.delete(tx);
      return r;
    },
    writeFile: async ({ tx, path, expected }, data) => this.receiveFile(tx, path, data, expected),
    // each file of the batch exactly as a writeFile of its own, in order, from the one data stream
    writeFiles: async ({ tx, files }, data) =>
      writeFilesEach(files, data, (f, part) => this.receiveFile(tx, f.path, part, f.expected)),
    parkedContent: async () => this.fs!.parkedContent(),
    copyParked: async ({ tx, to, expected }) => {
      await this.confineToWork(tx, to);
      const r = await this.fs!.copyParked(tx, to, expected);
      this.transfer.filesCopied++;
      this.transfer.bytesCopied += r.size;
      return r;
    },
    copyFile: async ({ tx, from, to, expected }) => {
      await this.confineToWork(tx, from);
      await this.confineToWork(tx, to);
      const r = await this.fs!.copyFile(tx, from, to, expected);
      this.transfer.filesCopied++;
      this.transfer.bytesCopied += r.size;
      return r;
    },
    writeLink: async ({ tx, path, target }) => {
      await this.confineToWork(tx, path);
      await this.linkTargetOnDisk(tx, path, target);
      await this.fs!.writeLink(tx, path, target);
      return null;
    },
    deleteFile: async ({ tx, path }) => {
      await this.confineToWork(tx, path);
      await this.fs!.deleteFile(tx, path);
      return null;
    },
    listSnapshots: async () => this.fs!.listSnapshots(),
    readFiles: async ({ files, snapshotId }) => this.sendFiles(files, snapshotId),
    readSnapshotFile: async ({ snapshotId, path }) => this.fs!.readSnapshotFile(snapshotId, path),
    mountSnapshot: async ({ snapshotId, at }) => {
      if (at !== undefined && !this.o.clientMountpoints) {
        throw new ValidationError(
          'the agent chooses where snapshots are mounted; "at" is not accepted over the wire',
          { field: 'at' },
          {
            recoveryHint: 'Leave out --mountpoint: the reply names the place the agent chose.',
          },
        );
      }
      if (!this.fs!.mountSnapshot) throw unsupported('mount snapshots');
      return this.fs!.mountSnapshot(snapshotId, at);
    },
    // Any session may undo a snapmount (it outlives the command that made it); the
    // backend only ever removes a view of THIS repository (ZFS: one of its mount
    // clones, posix: nothing) and refuses every other path with NotFoundError.
    unmountSnapshot: async ({ at }) => {
      if (!this.fs!.unmountSnapshot) throw unsupported('unmount snapshots');
      await this.fs!.unmountSnapshot(at);
      return null;
    },
    recover: async () => this.fs!.recover(),
  };

  /**
   * A batched download: each file of the head (or of `snapshotId`) in turn,
   * exactly the size the client expects, so it can cut the stream where each
   * file ends. A file that is missing or of another size ends the stream with
   * an error naming it (the client sees an ABORT): the batch cannot go on
   * without misplacing every byte after it.
   */
  private sendFiles(files: readonly SizedPath[], snapshotId?: string): Promise<ByteStream> {
    const fs = this.fs!;
    const open = (p: string) => (snapshotId === undefined ? fs.readFile(p) : fs.readSnapshotFile(snapshotId, p));
    return Promise.resolve(filesBackToBack(files, open, batchSource(snapshotId), () => this.transfer.filesSent++));
  }

  /** One uploaded file into the work area: the agent's confinement check, then the backend's verified write. */
  private async receiveFile(
    tx: TransactionId,
    path: string,
    source: ByteStream,
    expected: ExpectedFile,
  ): Promise<{ size: number }> {
    return this.sharedAround('writeFile', source, async (data) => {
      await this.confineToWork(tx, path);
      const r = await this.fs!.writeFile(tx, path, data, expected);
      this.transfer.filesReceived++;
      return r;
    });
  }

  private async open(name: string): Promise<{ repo: string; layout: string | null }> {
    if (this.fs) throw new ValidationError('a repository is already open in this session', { field: 'repo' });
    this.refuseRestricted(name);
    this.fs = this.o.host.open(name);
    this.repoName = name;
    if ((this.o.recoverOnOpen ?? true) && !this.o.readOnly) await this.recoverIfFree(name);
    return { repo: name, layout: (await this.fs.repositoryLayout?.()) ?? null };
  }

  /** `--restrict-to-repository`: every other name is refused, by open and detectRepository alike. */
  private refuseRestricted(name: string): void {
    const only = this.o.restrictToRepository;
    if (only !== undefined && name !== only) {
      throw new DsgError(
        'RESTRICTED',
        `this agent serves only the repository ${JSON.stringify(only)} (dsg-agent serve --restrict-to-repository); ${JSON.stringify(name)} is refused`,
        {
          recoveryHint: `Use the repository name ${JSON.stringify(only)}, or a login whose agent command serves ${JSON.stringify(name)}.`,
        },
      );
    }
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

  /** Another session's short recovery at open holds the lock for a moment: wait for it (up to 30 s) rather than fail. */
  private async acquireWaitingForRecovery(lock: RepositoryLock, h: LockHolder): Promise<{ tookOver: boolean }> {
    const r = await retryWhile(
      () =>
        lock.acquire(h).then(
          (value) => ({ value }),
          (error: unknown) => ({ error }),
        ),
      (r) => 'error' in r && r.error instanceof LockedError && r.error.holder.user === RECOVERY_USER,
      { timeoutMs: 30_000, baseDelayMs: 200, maxDelayMs: 200 },
    );
    if ('error' in r) throw r.error;
    return r.value;
  }

  private async recoverQuietly(): Promise<void> {
    try {
      const r = await this.fs!.recover();
      if (r.transactions.length || r.leftovers.length) {
        this.log(
          `recovered ${this.repoName}: ${r.transactions.map((t) => `${t.transactionId} ${t.action}`).join(', ')}; leftovers ${r.leftovers.length}`,
        );
      }
    } catch (e) {
      this.log(`recovery of ${this.repoName} failed: ${String(e)}`);
    }
  }
}
