// A consumer of @dsg/transports alone: start dsg-agent as a child process over
// stdio (LocalTransport) on a fresh posix root, and — with DSG_CONSUMER_SSH=1 —
// the same agent over SSH (SshTransport). Through the agent protocol: hello, a
// new repository, one transaction (an upload with a wrong hash is refused, a
// right one lands, a link), commit as s1, then list, read back and digest.
// Prints one JSON line; exits 1 on any mismatch.
//
// Env: DSG_AGENT — the agent command as a JSON array (default ["dsg-agent"]);
// `serve --type posix --root <dir>` is appended. With DSG_CONSUMER_SSH=1 also
// DSG_TEST_SSH_HOST, DSG_TEST_SSH_PORT, DSG_TEST_SSH_USER, DSG_TEST_SSH_KEY and
// DSG_TEST_SSH_KNOWN_HOSTS (the SSH user runs the same agent command on that host).
import { createHash, randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readdir, rm } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalTransport, SshTransport, openRemote, type AgentClient, type ChannelTransport } from '@dsg/transports';

type TransactionId = Parameters<AgentClient['begin']>[0];

// The content of the one file this program uploads, and its xxh3-64 (seed 0):
// the agent verifies every upload against the hash the client announces. A real
// client computes it (hashBytes/hashFile of @dsg/manifest); this one uses only
// @dsg/transports, so the hash of this fixed payload is written down.
const PAYLOAD = Buffer.from('hello from a dsg consumer\n');
const PAYLOAD_XXH3 = 'a394a36e596c29f7';

/** `20261202T101112123Z-1a2b3c4d`: the transaction id format the agent accepts. */
function newTransactionId(): TransactionId {
  const stamp = new Date().toISOString().slice(0, 23).replace(/[-:.]/g, '') + 'Z';
  return `${stamp}-${randomBytes(4).toString('hex')}` as TransactionId;
}

async function* bytes(data: Uint8Array): AsyncIterable<Uint8Array> {
  yield data;
}

async function collect(stream: AsyncIterable<Uint8Array> | null): Promise<Buffer | null> {
  if (!stream) return null;
  const parts: Uint8Array[] = [];
  for await (const chunk of stream) parts.push(chunk);
  return Buffer.concat(parts);
}

/** One session: a new repository, one committed transaction, and what the agent says about it. */
async function session(name: string, transport: ChannelTransport, problems: string[]): Promise<object> {
  const check = (ok: boolean, what: string): void => {
    if (!ok) problems.push(`${name}: ${what}`);
  };
  const repoName = `consumer-${randomBytes(4).toString('hex')}`;
  const repo = await openRemote(transport, repoName, { clientName: 'transports-consumer', idleTimeoutMs: 60_000 });
  try {
    check((await repo.exists()) === false, 'a new repository already exists');
    await repo.lock({
      user: 'consumer@example.org',
      host: hostname(),
      pid: process.pid,
      since: new Date().toISOString(),
    });
    const tx = newTransactionId();
    const { pattern } = await repo.begin(tx);
    check(pattern === 'init', `begin pattern ${pattern}, expected init`);

    // content that does not hash to what the client announced is refused, and the transaction goes on
    let refused = '';
    try {
      await repo.writeFile(tx, 'data/wrong.txt', bytes(PAYLOAD), { hash: '0123456789abcdef', size: PAYLOAD.length });
    } catch (e) {
      refused = (e as { code?: string }).code ?? String(e);
    }
    check(refused === 'HASH_MISMATCH', `a wrong hash gave ${JSON.stringify(refused)}, expected HASH_MISMATCH`);

    const { size } = await repo.writeFile(tx, 'data/hello.txt', bytes(PAYLOAD), {
      hash: PAYLOAD_XXH3,
      size: PAYLOAD.length,
    });
    check(size === PAYLOAD.length, `uploaded ${size} bytes, sent ${PAYLOAD.length}`);
    await repo.writeLink(tx, 'data/latest.txt', 'hello.txt');
    // dsg records its manifest's snapshot_hash here; this program writes no manifest
    await repo.commit(tx, {
      snapshotId: 's1',
      message: 'from the transports consumer',
      manifestHash: '0000000000000000',
      user: 'consumer@example.org',
      createdAt: new Date().toISOString(),
    });

    const snapshots = await repo.listSnapshots();
    check(snapshots.length === 1 && snapshots[0]?.snapshotId === 's1', `snapshots ${JSON.stringify(snapshots)}`);
    const back = await collect(await repo.readFile('data/hello.txt'));
    check(back !== null && back.equals(PAYLOAD), 'data/hello.txt reads back different bytes');
    check((await repo.readFile('data/wrong.txt')) === null, 'the refused upload left a file');
    const s1 = await collect(await repo.readSnapshotFile('s1', 'data/hello.txt'));
    check(s1 !== null && s1.equals(PAYLOAD), 's1:data/hello.txt differs');
    const digest = await repo.fileDigest('data/hello.txt'); // undefined from agents older than protocol 1.2
    const sha256 = createHash('sha256').update(PAYLOAD).digest('hex');
    check(digest === undefined || digest?.sha256 === sha256, `fileDigest ${JSON.stringify(digest)}`);
    const listed = await repo.listRepositories();
    check(listed.includes(repoName), `listRepositories ${JSON.stringify(listed)} lacks ${repoName}`);
    await repo.unlock();
    return {
      transport: name,
      agent: repo.hello?.agent,
      protocol: repo.hello?.protocol,
      repository: repoName,
      refused,
      snapshots: snapshots.map((s) => s.snapshotId),
      bytes: back?.length,
      sha256: digest?.sha256,
    };
  } finally {
    await transport.end(); // the agent rolls back whatever is still open and releases the lock
  }
}

/** Committed snapshots are sealed read-only: make them writable again so the temp root can go. */
async function unseal(dir: string): Promise<void> {
  await chmod(dir, 0o700).catch(() => {});
  for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    if (e.isDirectory()) await unseal(join(dir, e.name));
  }
}

const agent: string[] = process.env.DSG_AGENT ? (JSON.parse(process.env.DSG_AGENT) as string[]) : ['dsg-agent'];
const root = await mkdtemp(join(tmpdir(), 'dsg-transports-consumer-'));
const serve = [...agent, 'serve', '--type', 'posix', '--root', root];
const problems: string[] = [];
const sessions: object[] = [];
try {
  sessions.push(await session('local', new LocalTransport({ mode: 'child', command: serve }), problems));
  if (process.env.DSG_CONSUMER_SSH === '1') {
    const env = (k: string): string => {
      const v = process.env[k];
      if (!v) throw new Error(`DSG_CONSUMER_SSH=1 needs ${k}`);
      return v;
    };
    const ssh = new SshTransport({
      host: env('DSG_TEST_SSH_HOST'),
      port: Number(env('DSG_TEST_SSH_PORT')),
      user: env('DSG_TEST_SSH_USER'),
      identityFile: env('DSG_TEST_SSH_KEY'),
      knownHostsFile: env('DSG_TEST_SSH_KNOWN_HOSTS'),
      agentSocket: null,
      agentCommand: serve,
    });
    sessions.push(await session('ssh', ssh, problems));
  }
} catch (e) {
  problems.push(e instanceof Error ? `${e.name}: ${e.message}` : String(e));
} finally {
  await unseal(root);
  await rm(root, { recursive: true, force: true });
}
console.log(JSON.stringify({ ok: problems.length === 0, sessions, problems }));
if (problems.length > 0) process.exit(1);
