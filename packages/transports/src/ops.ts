import type { DetectedRepository } from './detect.js';
import type {
  BatchFile,
  BeginResult,
  ByteStream,
  CleanupReport,
  ExpectedFile,
  FileDigest,
  LockHolder,
  RecoveryReport,
  RepositorySummary,
  SizedPath,
  SnapshotInfo,
  SnapshotRef,
  TransactionId,
} from '@dsg/contracts';
import * as F from './protocol.js';

/**
 * Whether a request carries a byte stream: `upload` — the client sends DATA…END after the REQUEST;
 * `download` — the RESPONSE is `{found}`, then (found) DATA…END from the agent.
 */
export type StreamDirection = 'none' | 'upload' | 'download';

export interface OpSpec<Args, Stream extends StreamDirection> {
  /**
   * The agent's check of the request's fields, refusing in this order (ProtocolError for a
   * malformed field, ValidationError for a refused value). Its result type is also what
   * AgentClient sends: the client does not check, the agent does.
   */
  readonly parse: (msg: F.Fields) => Args;
  readonly stream: Stream;
  /** allowed before `open` */
  readonly beforeOpen: boolean;
  /** refused (NOT_LOCKED) unless this session holds the repository lock; checked again once the op has the session mutex */
  readonly needsLock: boolean;
  /** changes the repository, its lock or its mounts: refused (READ_ONLY) by a `--read-only` agent */
  readonly mutating: boolean;
  /** runs alone under the session mutex, in arrival order (an upload holds it shared for its path steps instead) */
  readonly exclusive: boolean;
}

/** One operation: its spec, plus its result type (type only: what the handler returns and the client's call resolves to). */
export interface OpDef<Args, Result, Stream extends StreamDirection> extends OpSpec<Args, Stream> {
  readonly __result?: Result;
}

type Flags = 'beforeOpen' | 'needsLock' | 'mutating' | 'exclusive';
type Declared<Args, Stream extends StreamDirection> = Omit<OpSpec<Args, Stream>, Flags | 'stream'> &
  Partial<Pick<OpSpec<Args, Stream>, Flags>> & { stream?: Stream };

/** `op<Result>()({parse, …})`: the flags left out are false, the stream `none`. */
function op<Result>() {
  return <Args, Stream extends StreamDirection = 'none'>(d: Declared<Args, Stream>): OpDef<Args, Result, Stream> => ({
    parse: d.parse,
    stream: d.stream ?? ('none' as Stream),
    beforeOpen: d.beforeOpen ?? false,
    needsLock: d.needsLock ?? false,
    mutating: d.mutating ?? false,
    exclusive: d.exclusive ?? false,
  });
}

type Empty = Record<string, never>;
const none = (): Empty => ({});
/** a change inside an open transaction */
const IN_TX = { needsLock: true, mutating: true, exclusive: true } as const;

export interface HelloArgs {
  protocol: string;
  /** the client's name (not checked: for the agent's log only) */
  client?: string;
  /** ask the agent for a PING this often (ms) */
  heartbeatMs?: number;
  /** this client sends PINGs when asked (the hello reply's clientPingMs) */
  pings?: boolean;
}

export interface HelloReply {
  protocol: string;
  agent: string;
  host: string;
  pid: number;
  maxFramePayload: number;
  /** the PING interval the agent agreed to (absent: an agent without heartbeats) */
  heartbeatMs?: number;
  /**
   * How often the agent wants a PING from this client (absent: an agent that
   * does not watch its clients). The agent ends a session whose client sends
   * nothing for four of these: a stopped or vanished client does not keep
   * the repository lock.
   */
  clientPingMs?: number;
}

/** File content this session moved, as the agent counted it (DATA payload bytes; copies made on the server). */
export interface SessionTransfer {
  /** upload bytes that arrived, whether or not their file was accepted */
  bytesReceived: number;
  /** files written from uploads */
  filesReceived: number;
  /** download bytes sent */
  bytesSent: number;
  /** downloads sent to their end */
  filesSent: number;
  /** bytes of the files copyFile made on the server: content that did not cross the wire */
  bytesCopied: number;
  filesCopied: number;
  /** upload requests (a `writeFiles` pack is one) and downloads that found their file(s): how many files travel per request */
  uploadRequests: number;
  downloadRequests: number;
}

export interface AgentStats {
  rss: number;
  peakRss: number | null;
  pid: number;
  /** this session's transfer counters (absent from older agents) */
  session?: SessionTransfer;
}

/** The answer of `listRepositories` with `details: true`. */
export interface ListRepositoriesDetails {
  repositories: RepositorySummary[];
}

/** `layout`: what the backend found (e.g. `flat`), null for none; absent from older agents. */
export interface OpenReply {
  repo: string;
  layout?: string | null;
}

/**
 * Every operation of the agent protocol, the one declaration the client's
 * calls and the agent's dispatch are derived from (README "Messages",
 * "Adding an operation"). The wire is `{op: <key>, ...fields}`.
 */
export const OP_TABLE = {
  hello: op<HelloReply>()({
    parse: (m): HelloArgs => ({
      protocol: F.str(m, 'protocol', 20),
      ...(typeof m['client'] === 'string' ? { client: m['client'] } : {}),
      ...(typeof m['heartbeatMs'] === 'number' && Number.isFinite(m['heartbeatMs'])
        ? { heartbeatMs: m['heartbeatMs'] }
        : {}),
      ...(m['pings'] === true ? { pings: true } : {}),
    }),
    beforeOpen: true,
  }),
  // `details: true` (no protocol bump): `{repositories: RepositorySummary[]}` instead of the names; an older agent
  // ignores the field and answers names, which AgentClient.repositorySummaries reads as head/replicaOf unknown
  listRepositories: op<string[] | ListRepositoriesDetails>()({
    parse: (m): { details?: true } => (m['details'] === true ? { details: true } : {}),
    beforeOpen: true,
  }),
  // what <root>/<name> is (protocol 1.3): a clone by URL learns the repository type and pool; reads only
  detectRepository: op<DetectedRepository>()({
    parse: (m): { name: string; sudo: boolean } => ({ name: F.assertRepoName(m['name']), sudo: m['sudo'] === true }),
    beforeOpen: true,
  }),
  stats: op<AgentStats>()({ parse: none, beforeOpen: true }),
  open: op<OpenReply>()({ parse: (m) => ({ repo: F.assertRepoName(m['repo']) }), beforeOpen: true, exclusive: true }),
  lock: op<{ tookOver: boolean }>()({
    parse: (m): { holder: LockHolder } => ({ holder: F.holder(m) }),
    mutating: true,
    exclusive: true,
  }),
  unlock: op<null>()({ parse: none, mutating: true, exclusive: true }),
  exists: op<boolean>()({ parse: none }),
  readFile: op<ByteStream | null>()({ parse: (m) => ({ path: F.path(m) }), stream: 'download' }),
  // a head file's SHA-256 and size, read through the same backend readFile (protocol 1.2): its bytes stay on the server
  fileDigest: op<FileDigest | null>()({ parse: (m) => ({ path: F.path(m) }) }),
  begin: op<BeginResult>()({ parse: (m): { tx: TransactionId } => ({ tx: F.tx(m) }), ...IN_TX }),
  commit: op<null>()({
    parse: (m): { tx: TransactionId; snapshot: SnapshotInfo } => ({
      tx: F.tx(m),
      snapshot: F.snapshotInfo(m['snapshot']),
    }),
    ...IN_TX,
  }),
  rollback: op<CleanupReport>()({ parse: (m): { tx: TransactionId } => ({ tx: F.tx(m) }), ...IN_TX }),
  writeFile: op<{ size: number }>()({
    parse: (m): { tx: TransactionId; path: string; expected: ExpectedFile } => ({
      tx: F.tx(m),
      path: F.path(m),
      expected: F.expectedFile(m['expected']),
    }),
    stream: 'upload',
    needsLock: true,
    mutating: true,
  }),
  // many files back to back in one upload (protocol 1.1): small files without a round trip each
  writeFiles: op<{ sizes: number[] }>()({
    parse: (m): { tx: TransactionId; files: BatchFile[] } => ({ tx: F.tx(m), files: F.batchFiles(m['files']) }),
    stream: 'upload',
    needsLock: true,
    mutating: true,
  }),
  // a server-side copy inside the work area: exclusive like writeLink, whose check it must not interleave with
  copyFile: op<{ size: number }>()({
    parse: (m): { tx: TransactionId; from: string; to: string; expected: ExpectedFile } => ({
      tx: F.tx(m),
      from: F.path(m, 'from'),
      to: F.path(m, 'to'),
      expected: F.expectedFile(m['expected']),
    }),
    ...IN_TX,
  }),
  // verified uploads of an interrupted transaction, kept by hash (a resumed sync places them instead of sending)
  parkedContent: op<string[]>()({ parse: none }),
  copyParked: op<{ size: number }>()({
    parse: (m): { tx: TransactionId; to: string; expected: ExpectedFile } => ({
      tx: F.tx(m),
      to: F.path(m, 'to'),
      expected: F.expectedFile(m['expected']),
    }),
    ...IN_TX,
  }),
  writeLink: op<null>()({
    parse: (m): { tx: TransactionId; path: string; target: string } => {
      const tx = F.tx(m);
      const path = F.path(m);
      return { tx, path, target: F.linkTarget(m, path) };
    },
    ...IN_TX,
  }),
  deleteFile: op<null>()({
    parse: (m): { tx: TransactionId; path: string } => ({ tx: F.tx(m), path: F.path(m) }),
    ...IN_TX,
  }),
  listSnapshots: op<SnapshotRef[]>()({ parse: none }),
  readSnapshotFile: op<ByteStream | null>()({
    parse: (m) => ({ snapshotId: F.assertSnapshotId(m['snapshotId']), path: F.path(m) }),
    stream: 'download',
  }),
  // many files in one download (protocol 1.1): their bytes back to back, each exactly its size
  readFiles: op<ByteStream | null>()({
    parse: (m): { files: SizedPath[]; snapshotId?: string } => {
      const files = F.sizedPaths(m['files']);
      return m['snapshotId'] === undefined ? { files } : { files, snapshotId: F.assertSnapshotId(m['snapshotId']) };
    },
    stream: 'download',
  }),
  mountSnapshot: op<string>()({
    // `at` is refused unless the server allows client mountpoints (AgentServer clientMountpoints)
    parse: (m): { snapshotId: string; at?: string } => {
      const at = m['at'] === undefined ? undefined : F.str(m, 'at');
      const snapshotId = F.assertSnapshotId(m['snapshotId']);
      return at === undefined ? { snapshotId } : { snapshotId, at };
    },
    mutating: true,
  }),
  unmountSnapshot: op<null>()({ parse: (m) => ({ at: F.mountPath(m) }), mutating: true }),
  recover: op<RecoveryReport>()({ parse: none, ...IN_TX }),
};

export type Op = keyof typeof OP_TABLE;
/** Every operation a client may request. */
export const OPS = Object.keys(OP_TABLE) as readonly Op[];

export type ArgsOf<K extends Op> = ReturnType<(typeof OP_TABLE)[K]['parse']>;
export type ResultOf<K extends Op> = (typeof OP_TABLE)[K] extends OpDef<unknown, infer R, StreamDirection> ? R : never;
export type StreamOf<K extends Op> = (typeof OP_TABLE)[K]['stream'];
export type UploadOp = { [K in Op]: StreamOf<K> extends 'upload' ? K : never }[Op];

/** The op spec of `name`, or undefined for a name that is not an op (never an inherited property). */
export function opSpec(name: string): (typeof OP_TABLE)[Op] | undefined {
  return Object.hasOwn(OP_TABLE, name) ? OP_TABLE[name as Op] : undefined;
}
