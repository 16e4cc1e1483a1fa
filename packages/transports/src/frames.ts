import { FILE_READ_CHUNK, TransportError } from '@dsg/contracts';

/**
 * Frame layout (all integers big-endian):
 *
 *   u32 length   bytes that follow this field: 5 + payload length
 *   u8  kind     FrameKind
 *   u32 id       request id (0 = the session itself)
 *   ...payload   JSON (UTF-8) for REQUEST/RESPONSE/ABORT, raw bytes for DATA, empty for END and PING
 *
 * PING (agent → client, id 0, empty) is the agent's heartbeat: sent only to a
 * client that asked for it in hello (`heartbeatMs`), so the client can tell a
 * stalled agent (stopped, wedged) from a slow operation.
 */
export const FrameKind = {
  REQUEST: 1,
  RESPONSE: 2,
  DATA: 3,
  END: 4,
  ABORT: 5,
  PING: 6,
} as const;
export type FrameKind = (typeof FrameKind)[keyof typeof FrameKind];

export const HEADER_BYTES = 9;
/** Largest payload a peer accepts; bigger frames close the session. */
export const DEFAULT_MAX_PAYLOAD = 1 << 20;
/** Size data chunks are cut to before framing. */
export const DATA_CHUNK = FILE_READ_CHUNK;
/** A payload this large is written after its header, not copied into one buffer with it. */
const SEPARATE_PAYLOAD = 4096;

export interface Frame {
  kind: FrameKind;
  id: number;
  payload: Buffer;
}

export class ProtocolError extends TransportError {
  constructor(message: string) {
    super(`agent protocol error: ${message}`, {
      recoveryHint:
        'The client and agent disagree about the protocol; check both versions (dsg --version, dsg-agent --version).',
    });
  }
}

export function encodeHeader(kind: FrameKind, id: number, payloadLength: number): Buffer {
  const h = Buffer.allocUnsafe(HEADER_BYTES);
  h.writeUInt32BE(5 + payloadLength, 0);
  h.writeUInt8(kind, 4);
  h.writeUInt32BE(id >>> 0, 5);
  return h;
}

const KINDS = new Set<number>(Object.values(FrameKind));
const EMPTY = Buffer.alloc(0);

/**
 * Parses frames from a byte stream. Holds at most one frame plus one read
 * chunk in memory; a declared length above maxPayload is refused before any
 * of its bytes are buffered. Pulling (for await) is what reads the input, so
 * a slow consumer of the frames pauses the socket: that is the backpressure.
 */
export async function* readFrames(
  input: AsyncIterable<unknown>,
  maxPayload = DEFAULT_MAX_PAYLOAD,
): AsyncGenerator<Frame> {
  const chunks: Buffer[] = [];
  let have = 0;
  let need = -1; // payload bytes of the frame whose header was read, -1 while the header is incomplete
  let kind = 0;
  let id = 0;
  // The first n bytes, copied only when they span chunks (then into a buffer of exactly n); `pins`:
  // a view into a read chunk much bigger than itself, which a frame kept for long would hold alive.
  const take = (n: number): { bytes: Buffer; pins: boolean } => {
    const first = chunks[0]!;
    if (first.length >= n) {
      if (first.length === n) chunks.shift();
      else chunks[0] = first.subarray(n);
      have -= n;
      return { bytes: first.subarray(0, n), pins: first.buffer.byteLength > 2 * n };
    }
    // the chunks used up are dropped in one splice: a shift per chunk made a frame sent in
    // tiny pieces (a peer's choice) cost time quadratic in its piece count (1-byte pieces of a
    // 300 kB frame: 29 s, now 0.3 s)
    const parts: Buffer[] = [];
    let got = 0;
    let used = 0;
    while (got < n) {
      const c = chunks[used]!;
      if (c.length <= n - got) {
        parts.push(c);
        got += c.length;
        used++;
      } else {
        parts.push(c.subarray(0, n - got));
        chunks[used] = c.subarray(n - got);
        got = n;
      }
    }
    chunks.splice(0, used);
    have -= n;
    return { bytes: Buffer.concat(parts, n), pins: false };
  };
  for await (const raw of input) {
    // a Buffer from a stream is never reused by its producer: no copy
    const chunk = Buffer.isBuffer(raw)
      ? raw
      : typeof raw === 'string'
        ? Buffer.from(raw)
        : Buffer.from(raw as Uint8Array);
    if (chunk.length === 0) continue;
    chunks.push(chunk);
    have += chunk.length;
    for (;;) {
      if (need < 0) {
        if (have < HEADER_BYTES) break;
        // the header is taken on its own, then the payload: a payload written after its header
        // (FrameWriter) arrives as its own chunk and is passed on as it is, not copied
        const { bytes: head } = take(HEADER_BYTES);
        const len = head.readUInt32BE(0);
        kind = head.readUInt8(4);
        id = head.readUInt32BE(5);
        if (len < 5) throw new ProtocolError(`frame length ${len} is shorter than its header`);
        if (len - 5 > maxPayload)
          throw new ProtocolError(`frame of ${len - 5} bytes exceeds the limit of ${maxPayload} bytes`);
        if (!KINDS.has(kind)) throw new ProtocolError(`unknown frame kind ${kind}`);
        need = len - 5;
      }
      if (have < need) break;
      const { bytes: payload, pins } = need > 0 ? take(need) : { bytes: EMPTY, pins: false };
      need = -1;
      yield { kind: kind as FrameKind, id, payload: pins ? Buffer.from(payload) : payload };
    }
  }
  // A cut connection (sshd or agent killed, network gone), not a protocol disagreement: the
  // ProtocolError's "check both versions" hint sent users after the wrong problem.
  // (need ≥ 0: a header was read and its payload never came, even when no byte of it did)
  if (have > 0 || need >= 0) {
    const left = need >= 0 ? `${have} of its ${need} payload bytes` : `${have} bytes left over`;
    throw new TransportError(`the connection ended inside a frame (${left}): it was cut off`, {
      recoveryHint:
        'The connection to the agent was cut off (network, sshd or the agent killed); retry. An interrupted transaction is rolled back.',
    });
  }
}

/**
 * Writes frames to one output shared by concurrent senders. Each frame goes
 * out in one synchronous step (so frames never interleave); when write()
 * returns false every sender waits for 'drain' before its next frame.
 */
export class FrameWriter {
  private drainWait: Promise<void> | null = null;
  /** ends drainWait: on 'drain', on the output's end, or when the session is declared dead */
  private wake: (() => void) | null = null;
  private closedError: Error | null = null;

  constructor(
    private readonly output: NodeJS.WritableStream,
    private readonly maxPayload = DEFAULT_MAX_PAYLOAD,
  ) {
    const onGone = (e?: unknown): void => {
      this.closedError ??= new TransportError('the connection closed', { cause: e });
    };
    output.on('error', onGone);
    output.on('close', () => onGone());
  }

  get closed(): boolean {
    return this.closedError !== null;
  }

  /**
   * The session is dead (the peer ended it, a watchdog gave up): every
   * sender waiting for 'drain' fails now. An ssh2 channel the reader has
   * left emits neither 'drain' nor 'close' after the peer closed it, so
   * waiting for the stream would wait forever.
   */
  markClosed(err: Error): void {
    this.closedError ??= err;
    this.wake?.();
  }

  async send(kind: FrameKind, id: number, payload: Uint8Array = Buffer.alloc(0)): Promise<void> {
    if (payload.length > this.maxPayload) throw new ProtocolError(`refusing to send a ${payload.length}-byte frame`);
    while (this.drainWait) await this.drainWait;
    if (this.closedError) throw this.closedError;
    const header = encodeHeader(kind, id, payload.length);
    // A large payload follows its header as its own write (the two in one synchronous step, so frames
    // never interleave): joined, every data byte sent was copied once more, and 100k entries' manifest
    // left 23 MB of copies for the collector. A small one is joined (one write, one SSH packet).
    let ok: boolean;
    if (payload.length >= SEPARATE_PAYLOAD) {
      this.output.write(header);
      ok = this.output.write(payload);
    } else ok = this.output.write(payload.length ? Buffer.concat([header, payload]) : header);
    if (!ok && !this.drainWait) {
      this.drainWait = new Promise<void>((resolve) => {
        const done = (): void => {
          this.output.removeListener('drain', done);
          this.output.removeListener('close', done);
          this.output.removeListener('error', done);
          this.drainWait = null;
          this.wake = null;
          resolve();
        };
        this.wake = done;
        this.output.on('drain', done);
        this.output.on('close', done);
        this.output.on('error', done);
      });
    }
  }

  /**
   * The session's last frame, after markClosed: queued on the output even
   * when a reader that stopped has backed it up (one small frame, so no
   * backpressure is needed), for that reader to find if it ever wakes up.
   * False when the output itself is gone.
   */
  sendLast(kind: FrameKind, id: number, value: unknown): boolean {
    const payload = Buffer.from(JSON.stringify(value), 'utf8');
    if (payload.length > this.maxPayload) throw new ProtocolError(`refusing to send a ${payload.length}-byte frame`);
    const out = this.output as NodeJS.WritableStream & { writableEnded?: boolean; destroyed?: boolean };
    if (out.writableEnded || out.destroyed) return false;
    out.write(Buffer.concat([encodeHeader(kind, id, payload.length), payload]));
    return true;
  }

  sendJson(kind: FrameKind, id: number, value: unknown): Promise<void> {
    return this.send(kind, id, Buffer.from(JSON.stringify(value), 'utf8'));
  }

  /**
   * Send a byte stream as DATA frames cut to DATA_CHUNK, then END. A large
   * chunk is written as it is, not copied (see send): its producer must not
   * reuse the buffer once handed over (every ByteStream producer makes a new
   * one per chunk).
   */
  async sendStream(id: number, data: AsyncIterable<Uint8Array>, cancelled: () => boolean = () => false): Promise<void> {
    for await (const chunk of data) {
      for (let off = 0; off < chunk.length; off += DATA_CHUNK) {
        if (cancelled()) return;
        await this.send(FrameKind.DATA, id, chunk.subarray(off, Math.min(chunk.length, off + DATA_CHUNK)));
      }
    }
    if (!cancelled()) await this.send(FrameKind.END, id);
  }
}

export function parseJson(payload: Buffer, what: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(payload.toString('utf8'));
  } catch {
    throw new ProtocolError(`${what} is not valid JSON`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ProtocolError(`${what} is not a JSON object`);
  return v as Record<string, unknown>;
}
