// The serialised part of an upload, measured: a first sync of N small files
// (1 KiB, in ~N/15 directories) with 16 writeFiles in flight, as the sync
// engine sends them, through the agent in this process (its session lock and
// the backend's, no SSH), to posix (a temp dir) and to ZFS (the test pool,
// when the test env is up). Prints the median of RUNS runs of begin → N
// uploads → commit. Run after a build: `node bench/micro/agent-small-files.mjs [N] [RUNS]`.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { newTransactionId } from '@dsg/contracts';
import { freshParent, zfsEnv } from '@dsg/testenv';
import { LocalTransport, openRemote } from '@dsg/transports';
import { createAgentHasher, createAgentServer } from '@dsg/agent';

const N = Number(process.argv[2] ?? 3000);
const RUNS = Number(process.argv[3] ?? 5);
const IN_FLIGHT = 16;
const hasher = await createAgentHasher();
const files = Array.from({ length: N }, (_, i) => {
  const body = Buffer.alloc(1024, `file ${i} `);
  const h = hasher();
  h.update(body);
  return { rel: `input/d${i % Math.max(1, Math.floor(N / 15))}/sub${i % 3}/f${i}.csv`, body, hash: h.digest() };
});

async function once(config, repo) {
  const t = new LocalTransport({ mode: 'in-process', server: createAgentServer(config, hasher, () => {}) });
  const c = await openRemote(t, repo);
  try {
    await c.lock({ user: 'bench', host: 'bench', pid: process.pid, since: new Date().toISOString() });
    const tx = newTransactionId();
    const t0 = performance.now();
    await c.begin(tx);
    let next = 0;
    const worker = async () => {
      while (next < files.length) {
        const f = files[next++];
        await c.writeFile(
          tx,
          f.rel,
          (async function* () {
            yield f.body;
          })(),
          { hash: f.hash, size: f.body.length },
        );
      }
    };
    await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
    await c.commit(tx, {
      snapshotId: 's1',
      message: '',
      manifestHash: '',
      user: 'bench',
      createdAt: new Date().toISOString(),
    });
    const ms = performance.now() - t0;
    await c.unlock();
    return ms;
  } finally {
    await t.end();
  }
}

async function series(label, make) {
  const times = [];
  for (let r = 0; r <= RUNS; r++) {
    const { config, repo, done } = await make(r);
    try {
      const ms = await once(config, repo);
      if (r > 0) times.push(ms); // run 0 warms up
    } finally {
      await done();
    }
  }
  times.sort((a, b) => a - b);
  const s = (ms) => `${(ms / 1000).toFixed(2)} s`;
  console.log(
    `${label.padEnd(6)} ${N} files, ${IN_FLIGHT} in flight: min ${s(times[0])}  median ${s(times[Math.floor(times.length / 2)])}  max ${s(times.at(-1))}`,
  );
}

const dir = await mkdtemp(join(tmpdir(), 'dsg-bench-small-'));
try {
  await series('posix', async (r) => ({
    config: { type: 'posix', root: dir },
    repo: `p${r}`,
    done: () => rm(join(dir, `p${r}`), { recursive: true, force: true }),
  }));
  const zfs = zfsEnv();
  if (zfs) {
    await series('zfs', async () => {
      const parent = freshParent(zfs, 'bench');
      return {
        config: { type: 'zfs', pool: parent.dataset, mountpoint: parent.mountpoint },
        repo: 'r',
        done: async () => parent.destroy(),
      };
    });
  } else console.log('zfs: test pool not configured, skipped');
} finally {
  await rm(dir, { recursive: true, force: true });
}
