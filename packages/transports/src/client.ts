import type { Readable } from 'node:stream';
import {
  TransportError,
  errorFromJSON,
  writeFilesEach,
  type BatchFile,
  type SizedPath,
  type BeginResult,
  type ByteStream,
  type CleanupReport,
  type ExpectedFile,
  type FileDigest,
  type LockHolder,
  type RecoveryReport,
  type RemoteRepository,
  type RepositorySummary,
  type SerializedError,
  type SnapshotInfo,
  type SnapshotMounter,
  type SnapshotRef,
  type TransactionId,
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
import {
  OP_TABLE,
  type AgentStats,
  type ArgsOf,
  type HelloReply,
  type Op,
  type OpenReply,
  type ResultOf,
  type UploadOp,
} from './ops.js';
import type { DetectedRepository } from './detect.js';
import { PROTOCOL_VERSION, majorOf, minorOf } from './protocol.js';

export type { HelloReply } from './ops.js';

/** An op's fields as arguments: none needed when the op has no required field. */
type ArgsParam<K extends Op> = Record<string, never> extends ArgsOf<K> ? [args?: ArgsOf<K>] : [args: ArgsOf<K>];

/** The two directions of a byte channel to an agent. */
export interface AgentChannel {
  /** bytes from the agent */
  input: NodeJS.ReadableStream;
  /** bytes to the agent */
  output: NodeJS.WritableStream;
  /** extra words for the error when the channel dies (e.g. the agent's stderr tail) */
  describeClose?: () => string;
  /**
   * Why a channel closed before the agent said a word, when the channel can tell
   * (the shell found no agent command: exit 127): replaces the generic message and hint.
   */
  explainClose?: () => Promise<{ message: string; recoveryHint: string } | undefined>;
  /** tear the channel down now, without waiting for the agent (it stalled) */
  abort?: (err: Error) => void;
}

export interface AgentClientOptions {
  maxFramePayload?: number;
  clientName?: string;
  /**
   * Give up on an agent that sends nothing at all for this long (ms): at the
   * handshake the client asks the agent for a PING every quarter of it, so
   * only a stalled agent (stopped, wedged, its host frozen behind a live
   * sshd) trips it, never a slow operation. 0 or absent: wait forever. An
   * agent too old to send PINGs is not watched.
   */
  idleTimeoutMs?: number;
}

/** A Transport that hands out the byte channel it opened. */
export interface ChannelTransport {
  begin(): Promise<void>;
  end(): Promise<void>;
  channel(): AgentChannel;
}

interface Pending {
  resolve(v: unknown): void;
  reject(e: Error): void;
  /** a download: on {found:true} the stream queue is made before the next frame is read */
  stream?: boolean;
}

/**
 * RemoteRepository + SnapshotMounter over the agent protocol. Requests are
 * multiplexed by id; uploads and downloads stream in frames with
 * backpressure both ways. When the channel dies every pending call and open
 * stream fails with a TransportError.
 */
export class AgentClient implements RemoteRepository, SnapshotMounter {
  private readonly writer: FrameWriter;
  private readonly pending = new Map<number, Pending>();
  private readonly downloads = new Map<number, ByteQueue>();
  private nextId = 1;
  private dead: TransportError | null = null;
  readonly closed: Promise<void>;
  hello: HelloReply | null = null;
  /** when the last frame arrived (or the read loop last waited for one) */
  private lastInput = Date.now();
  /** the read loop is handing a frame to a slow consumer: not the agent's fault */
  private delivering = false;
  private watchdog: NodeJS.Timeout | null = null;
  private pinger: NodeJS.Timeout | null = null;

  constructor(
    private readonly channel: AgentChannel,
    private readonly opts: AgentClientOptions = {},
  ) {
    this.writer = new FrameWriter(channel.output, opts.maxFramePayload ?? DEFAULT_MAX_PAYLOAD);
    channel.output.on('error', () => {});
    this.closed = this.readLoop();
  }

  /**
   * The channel's bytes, read without destroying it when they end. A plain
   * `for await` destroys a stream it read to the end, and an ssh2 channel's
   * destroy sends CHANNEL_CLOSE at once: sshd, closing the channel before it
   * reaped the agent, then never sent the exit status that tells "dsg-agent
   * not found" (127) from a closed connection. The channel closes when the
   * transport ends, or below when this side gives up on it.
   */
  private input(): AsyncIterable<unknown> {
    const input = this.channel.input as NodeJS.ReadableStream & Partial<Pick<Readable, 'iterator'>>;
    return typeof input.iterator === 'function'
      ? input.iterator({ destroyOnReturn: false })
      : (input as AsyncIterable<unknown>);
  }

  /** Destroy the channel's input (a channel that is not a Node stream has nothing to destroy). */
  private dropInput(): void {
    (this.channel.input as Partial<Pick<Readable, 'destroy'>>).destroy?.();
  }

  private async readLoop(): Promise<void> {
    let why = 'the agent closed the connection';
    let cause: unknown;
    let frames = 0;
    try {
      for await (const f of readFrames(this.input(), this.opts.maxFramePayload ?? DEFAULT_MAX_PAYLOAD)) {
        frames++;
        this.delivering = true;
        let fatal: TransportError | null;
        try {
          fatal = await this.onFrame(f);
        } finally {
          this.delivering = false;
          this.lastInput = Date.now();
        }
        if (fatal) {
          this.die(fatal);
          // leaving the loop early no longer destroys the channel by itself: as before, it goes now
          this.dropInput();
          return;
        }
      }
    } catch (e) {
      cause = e;
      why = e instanceof ProtocolError ? e.message : `the connection to the agent failed: ${(e as Error).message}`;
    }
    const extra = this.channel.describeClose?.();
    const explained = frames === 0 ? await this.channel.explainClose?.().catch(() => undefined) : undefined;
    // a stream that broke goes now, as before (after the exit status had its chance to arrive)
    if (cause !== undefined) this.dropInput();
    if (explained) {
      this.die(
        new TransportError(extra ? `${explained.message} (${extra})` : explained.message, {
          cause,
          recoveryHint: explained.recoveryHint,
        }),
      );
      return;
    }
    this.die(new TransportError(extra ? `${why} (${extra})` : why, { cause }));
  }

  private die(err: TransportError): void {
    if (this.dead) return;
    this.dead = err;
    if (this.watchdog) clearInterval(this.watchdog);
    this.watchdog = null;
    if (this.pinger) clearInterval(this.pinger);
    this.pinger = null;
    this.writer.markClosed(err);
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    for (const q of this.downloads.values()) q.fail(err);
    this.downloads.clear();
  }

  private async onFrame(f: Frame): Promise<TransportError | null> {
    switch (f.kind) {
      case FrameKind.RESPONSE: {
        const msg = parseJson(f.payload, 'response');
        if (f.id === 0) {
          const e = errorFromJSON(msg['error'] as SerializedError);
          return new TransportError(`the agent closed the session: ${e.message}`, {
            cause: e,
            recoveryHint: e.recoveryHint,
          });
        }
        const p = this.pending.get(f.id);
        if (!p) return null;
        this.pending.delete(f.id);
        if (msg['ok'] === true) {
          const result = msg['result'];
          if (p.stream && (result as { found?: boolean } | null)?.found) {
            const q = new ByteQueue(4 << 20, () => {
              this.downloads.delete(f.id);
              if (!this.dead)
                void this.writer
                  .sendJson(FrameKind.ABORT, f.id, {
                    name: 'DsgError',
                    code: 'CANCELLED',
                    message: 'download cancelled',
                    recoveryHint: '',
                  })
                  .catch(() => {});
            });
            this.downloads.set(f.id, q);
            p.resolve(q);
          } else p.resolve(p.stream ? null : result);
        } else p.reject(errorFromJSON(msg['error'] as SerializedError));
        return null;
      }
      case FrameKind.DATA: {
        const q = this.downloads.get(f.id);
        if (q) await q.push(f.payload);
        return null;
      }
      case FrameKind.PING:
        return null;
      case FrameKind.END:
        this.downloads.get(f.id)?.end();
        this.downloads.delete(f.id);
        return null;
      case FrameKind.ABORT: {
        const q = this.downloads.get(f.id);
        if (q) q.fail(errorFromJSON(parseJson(f.payload, 'abort') as unknown as SerializedError));
        this.downloads.delete(f.id);
        return null;
      }
      default:
        return new ProtocolError(`an agent may not send frames of kind ${f.kind}`);
    }
  }

  private call<T>(op: Op, args: object, stream: boolean): { id: number; result: Promise<T> } {
    const id = this.nextId++;
    const result = new Promise<T>((resolve, reject) => {
      if (this.dead) return reject(this.dead);
      this.pending.set(id, { resolve: resolve, reject, stream });
      this.writer.sendJson(FrameKind.REQUEST, id, { op, ...args }).catch((e: unknown) => {
        this.pending.delete(id);
        reject(this.dead ?? new TransportError(`could not send ${op}: ${(e as Error).message}`, { cause: e }));
      });
    });
    return { id, result };
  }

  /**
   * Any op of OP_TABLE but an upload, typed by the table: a download
   * resolves to its stream (null: not found). The agent checks the fields.
   */
  request<K extends Exclude<Op, UploadOp>>(op: K, ...[args]: ArgsParam<K>): Promise<ResultOf<K>> {
    return this.call<ResultOf<K>>(op, args ?? {}, OP_TABLE[op].stream === 'download').result;
  }

  /**
   * An upload op: the request, then `data` as DATA…END (an early answer
   * from the agent stops the sender; a failing source is sent as ABORT, so
   * the agent drops the partial file).
   */
  async upload<K extends UploadOp>(op: K, args: ArgsOf<K>, data: ByteStream): Promise<ResultOf<K>> {
    const { id, result } = this.call<ResultOf<K>>(op, args, false);
    let answered = false;
    const settled = result.finally(() => (answered = true));
    settled.catch(() => {});
    try {
      await this.writer.sendStream(id, data, () => answered);
    } catch (e) {
      if (this.dead) throw this.dead;
      if (!answered) {
        // the source failed: tell the agent so it drops the partial file
        await this.writer
          .sendJson(FrameKind.ABORT, id, {
            name: 'DsgError',
            code: 'SOURCE',
            message: `upload source failed: ${(e as Error).message}`,
            recoveryHint: '',
          })
          .catch(() => {});
      }
      await settled.catch(() => {});
      throw e;
    }
    return settled;
  }

  /** Version handshake; must be the first call. */
  async handshake(version = PROTOCOL_VERSION): Promise<HelloReply> {
    const idle = this.opts.idleTimeoutMs ?? 0;
    const heartbeatMs = idle > 0 ? Math.max(100, Math.floor(idle / 4)) : undefined;
    const reply = await this.request('hello', {
      protocol: version,
      client: this.opts.clientName ?? '@dsg/transports',
      ...(heartbeatMs ? { heartbeatMs } : {}),
      // this client sends PINGs if the agent asks (hello reply clientPingMs); older agents ignore it
      pings: true,
    });
    if (majorOf(reply.protocol) !== majorOf(version)) {
      throw new TransportError(
        `protocol version mismatch: this client speaks ${version}, the agent speaks ${reply.protocol}`,
        {
          recoveryHint: 'Install matching versions of dsg and dsg-agent.',
        },
      );
    }
    this.hello = reply;
    if (idle > 0 && typeof reply.heartbeatMs === 'number') this.watch(idle);
    if (typeof reply.clientPingMs === 'number' && Number.isFinite(reply.clientPingMs))
      this.ping(Math.max(50, reply.clientPingMs));
    return reply;
  }

  /** A PING to the agent every `ms`, whatever else is going on; at most one waits for the output at a time. */
  private ping(ms: number): void {
    let waiting = false;
    this.pinger = setInterval(() => {
      if (waiting || this.dead) return;
      waiting = true;
      this.writer.send(FrameKind.PING, 0).then(
        () => (waiting = false),
        () => (waiting = false),
      );
    }, ms);
    this.pinger.unref();
  }

  /**
   * Fails every pending call and tears the channel down once the agent has
   * sent nothing for `idle` ms. A tick that comes late means this process
   * itself was busy (frames may be waiting unread): the clock restarts.
   */
  private watch(idle: number): void {
    const tick = Math.max(50, Math.min(1000, Math.floor(idle / 8)));
    let lastTick = Date.now();
    this.lastInput = Date.now();
    this.watchdog = setInterval(() => {
      const now = Date.now();
      if (now - lastTick > tick * 4) this.lastInput = now;
      lastTick = now;
      if (this.delivering || this.dead || now - this.lastInput < idle) return;
      const err = new TransportError(
        `the agent sent nothing for ${(idle / 1000).toFixed(1)} s: it is stalled or its host stopped answering`,
        {
          recoveryHint:
            'Check the agent on the server (ps for dsg-agent); an agent that is stopped still holds the repository lock until it ends. ' +
            'The timeout is DSG_AGENT_TIMEOUT (seconds) or ssh.agent_timeout in the user config.',
        },
      );
      this.die(err);
      try {
        this.channel.abort?.(err);
      } catch {
        /* already gone */
      }
    }, tick);
    this.watchdog.unref();
  }

  /**
   * The opened repository's layout as its backend names it (`flat`: the
   * original HRDAG/dsg's xfs tree), or null when the backend does not say
   * (older agents) or there is no repository yet.
   */
  layout: string | null = null;

  async open(repo: string): Promise<OpenReply> {
    const r = await this.request('open', { repo });
    this.layout = typeof r.layout === 'string' ? r.layout : null;
    return r;
  }
  async listRepositories(): Promise<string[]> {
    const r = await this.request('listRepositories');
    // only an answer to `details` is an object; names are what was asked
    return Array.isArray(r) ? r : r.repositories.map((x) => x.name);
  }
  /**
   * The repositories with their newest snapshot and replica marker
   * (`listRepositories` with `details: true`). An older agent ignores
   * `details` and answers names: each comes back with head and replicaOf
   * absent (unknown), never guessed.
   */
  async repositorySummaries(): Promise<RepositorySummary[]> {
    const r = await this.request('listRepositories', { details: true });
    if (Array.isArray(r)) return r.map((name) => ({ name }));
    if (!r || !Array.isArray(r.repositories)) {
      throw new ProtocolError('listRepositories: the agent answered neither names nor {repositories}');
    }
    return r.repositories;
  }
  /** The agent's memory use (bytes); peakRss from /proc where available. */
  stats(): Promise<AgentStats> {
    return this.request('stats');
  }

  async lock(holder: LockHolder): Promise<void> {
    await this.request('lock', { holder });
  }
  async unlock(): Promise<void> {
    await this.request('unlock');
  }
  exists(): Promise<boolean> {
    return this.request('exists');
  }
  /**
   * What repository `name` is under the agent's root (before open): a ZFS
   * dataset `<pool>/<name>` mounted there, a posix repository, or neither.
   * undefined from an agent older than protocol 1.3.
   */
  async detectRepository(name: string, o: { sudo?: boolean } = {}): Promise<DetectedRepository | undefined> {
    if (minorOf(this.hello?.protocol ?? '1.0') < 3) return undefined;
    const d = await this.request('detectRepository', { name, sudo: o.sudo === true });
    // the answer decides what a clone connects to: a malformed one is an error, never a guess
    const ok =
      typeof d === 'object' &&
      d !== null &&
      (d.type === 'zfs'
        ? typeof d.dataset === 'string' && typeof d.pool === 'string' && d.pool.length > 0
        : d.type === 'posix'
          ? d.layout === 'snapshots' || d.layout === 'flat'
          : d.type === null && typeof d.reason === 'string');
    if (!ok) throw new ProtocolError(`the agent answered detectRepository of ${JSON.stringify(name)} malformed`);
    return d;
  }
  readFile(path: string): Promise<ByteStream | null> {
    return this.request('readFile', { path });
  }
  /**
   * SHA-256 and size of a head file, computed by the agent (null: absent):
   * whether a copy here is byte-identical, without the download. undefined
   * from an agent older than protocol 1.2: the caller reads the file instead.
   */
  async fileDigest(path: string): Promise<FileDigest | null | undefined> {
    if (minorOf(this.hello?.protocol ?? '1.0') < 2) return undefined;
    const d = await this.request('fileDigest', { path });
    if (d === null) return null;
    // a malformed answer must never read as "the same": the caller compares it with its own bytes
    if (
      typeof d !== 'object' ||
      typeof d.sha256 !== 'string' ||
      !/^[0-9a-f]{64}$/.test(d.sha256) ||
      !Number.isSafeInteger(d.size) ||
      d.size < 0
    )
      throw new ProtocolError(`the agent answered fileDigest of ${JSON.stringify(path)} with a malformed digest`);
    return { sha256: d.sha256, size: d.size };
  }
  begin(tx: TransactionId): Promise<BeginResult> {
    return this.request('begin', { tx });
  }
  async commit(tx: TransactionId, snapshot: SnapshotInfo): Promise<void> {
    await this.request('commit', { tx, snapshot });
  }
  rollback(tx: TransactionId): Promise<CleanupReport> {
    return this.request('rollback', { tx });
  }
  writeFile(tx: TransactionId, path: string, data: ByteStream, expected: ExpectedFile): Promise<{ size: number }> {
    return this.upload('writeFile', { tx, path, expected }, data);
  }
  /** One request for the batch; an agent older than protocol 1.1 gets a writeFile per file instead. */
  writeFiles(tx: TransactionId, files: readonly BatchFile[], data: ByteStream): Promise<{ sizes: number[] }> {
    if (minorOf(this.hello?.protocol ?? '1.0') >= 1) return this.upload('writeFiles', { tx, files: [...files] }, data);
    return writeFilesEach(files, data, (f, part) => this.writeFile(tx, f.path, part, f.expected));
  }
  copyFile(tx: TransactionId, from: string, to: string, expected: ExpectedFile): Promise<{ size: number }> {
    return this.request('copyFile', { tx, from, to, expected });
  }
  parkedContent(): Promise<string[]> {
    return this.request('parkedContent');
  }
  copyParked(tx: TransactionId, to: string, expected: ExpectedFile): Promise<{ size: number }> {
    return this.request('copyParked', { tx, to, expected });
  }
  async writeLink(tx: TransactionId, path: string, target: string): Promise<void> {
    await this.request('writeLink', { tx, path, target });
  }
  async deleteFile(tx: TransactionId, path: string): Promise<void> {
    await this.request('deleteFile', { tx, path });
  }
  listSnapshots(): Promise<SnapshotRef[]> {
    return this.request('listSnapshots');
  }
  /**
   * Many files in one download: their bytes back to back, each exactly its
   * `size` (a file missing or of another size fails the stream, naming it).
   * An agent older than protocol 1.1 gets one read per file instead.
   */
  async readFiles(files: readonly SizedPath[], snapshotId?: string): Promise<ByteStream> {
    if (minorOf(this.hello?.protocol ?? '1.0') >= 1) {
      const args = { files: [...files], ...(snapshotId === undefined ? {} : { snapshotId }) };
      const s = await this.request('readFiles', args);
      if (!s) throw new ProtocolError('readFiles answered "not found" for a batch');
      return s;
    }
    const open = (p: string) => (snapshotId === undefined ? this.readFile(p) : this.readSnapshotFile(snapshotId, p));
    return filesBackToBack(files, open, batchSource(snapshotId));
  }
  readSnapshotFile(snapshotId: string, path: string): Promise<ByteStream | null> {
    return this.request('readSnapshotFile', { snapshotId, path });
  }
  recover(): Promise<RecoveryReport> {
    return this.request('recover');
  }
  /** Mounts on the agent's host; the agent chooses where (`at` must be left out). */
  mountSnapshot(snapshotId: string, at?: string): Promise<string> {
    return this.request('mountSnapshot', at === undefined ? { snapshotId } : { snapshotId, at });
  }
  async unmountSnapshot(at: string): Promise<void> {
    await this.request('unmountSnapshot', { at });
  }

  /** Send raw bytes (tests of the agent's defences only). */
  rawWrite(bytes: Uint8Array): void {
    this.channel.output.write(bytes);
  }
}

/** begin the transport, shake hands, open the repository. */
export async function openRemote(
  transport: ChannelTransport,
  repo: string,
  opts: AgentClientOptions = {},
): Promise<AgentClient> {
  await transport.begin();
  const client = new AgentClient(transport.channel(), opts);
  try {
    await client.handshake();
    await client.open(repo);
  } catch (e) {
    await transport.end().catch(() => {});
    throw e;
  }
  return client;
}
