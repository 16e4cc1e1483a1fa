// Throughput of the agent protocol: one 256 MiB file up and down, through the
// in-process transport and through the real test sshd with the bundled agent.
// Run after a build: `node bench/micro/agent-throughput.mjs` (needs the test env for SSH).
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { newTransactionId } from '@dsg/contracts';
import { sshEnv } from '@dsg/testenv';
import { LocalTransport, SshTransport, openRemote } from '@dsg/transports';
import { createAgentHasher, createAgentServer } from '@dsg/agent';

const MiB = 1 << 20;
const SIZE = 256 * MiB;
const hasher = await createAgentHasher();
const block = randomBytes(MiB);
async function* source() {
  for (let i = 0; i < SIZE / MiB; i++) yield block;
}
const h = hasher();
for (let i = 0; i < SIZE / MiB; i++) h.update(block);
const hash = h.digest();

async function run(label, transport) {
  const c = await openRemote(transport, 'bench');
  await c.lock({ user: 'bench', host: 'bench', pid: process.pid, since: new Date().toISOString() });
  const tx = newTransactionId();
  await c.begin(tx);
  let t0 = performance.now();
  await c.writeFile(tx, 'big', source(), { hash, size: SIZE });
  const up = performance.now() - t0;
  await c.commit(tx, {
    snapshotId: 's1',
    message: '',
    manifestHash: '',
    user: 'bench',
    createdAt: new Date().toISOString(),
  });
  await c.unlock();
  t0 = performance.now();
  let n = 0;
  for await (const chunk of await c.readFile('big')) n += chunk.length;
  const down = performance.now() - t0;
  await transport.end();
  const rate = (ms) => `${(SIZE / MiB / (ms / 1000)).toFixed(0)} MiB/s`;
  console.log(
    `${label.padEnd(12)} upload ${rate(up)}  download ${rate(down)}  (${n === SIZE ? 'ok' : 'SIZE MISMATCH'})`,
  );
}

const dir = await mkdtemp(join(tmpdir(), 'dsg-bench-'));
try {
  await run(
    'in-process',
    new LocalTransport({
      mode: 'in-process',
      server: createAgentServer({ type: 'posix', root: join(dir, 'a') }, hasher, () => {}),
    }),
  );
  const ssh = sshEnv();
  if (ssh) {
    const bundle = fileURLToPath(new URL('dsg-agent.mjs', import.meta.resolve('@dsg/agent')));
    await run(
      'ssh',
      new SshTransport({
        host: ssh.host,
        port: ssh.port,
        user: ssh.user,
        identityFile: ssh.key,
        knownHostsFile: ssh.knownHosts,
        sshConfigFile: '/nonexistent',
        agentSocket: null,
        agentCommand: ['node', bundle, 'serve', '--type', 'posix', '--root', join(dir, 'b')],
      }),
    );
  } else console.log('ssh: test sshd not configured, skipped');
} finally {
  await rm(dir, { recursive: true, force: true });
}
