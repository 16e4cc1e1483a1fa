// Benchmark (not a test): init, clone and an incremental sync of a generated
// tree through the real stack (LocalClientFilesystem, in-process agent,
// PosixRemoteFilesystem, or ZfsRemoteFilesystem on the test pool), served by the agent's hosts.
// Usage (after a build): node bench/micro/sync-engine.mjs [files] [bytesPerFile] [posix|zfs]
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { LocalClientFilesystem } from '@dsg/client-fs';
import { createXxh3Hasher } from '@dsg/manifest';
import { posixHost } from '@dsg/posix-ops';
import { freshParent, zfsEnv } from '@dsg/testenv';
import { zfsHost } from '@dsg/zfs-ops';
import { runClone, runSync } from '@dsg/coordinator';
import { LocalTransport, openRemote } from '@dsg/transports';
import { AgentServer } from '@dsg/transports/server';

const files = Number(process.argv[2] ?? 2000);
const size = Number(process.argv[3] ?? 64 * 1024);
const base = await mkdtemp(path.join(os.tmpdir(), 'dsg-bench-'));
const repos = path.join(base, 'repos');
await mkdir(repos);
const backend = process.argv[4] ?? 'posix';
const parent =
  backend === 'zfs'
    ? freshParent(
        zfsEnv() ??
          (() => {
            throw new Error('no ZFS test pool');
          })(),
        'bench',
      )
    : null;
const server = new AgentServer({
  host: parent
    ? zfsHost({ parent: parent.dataset, mountpoint: parent.mountpoint, hasher: createXxh3Hasher })
    : posixHost({ root: repos, hasher: createXxh3Hasher }),
  hasher: createXxh3Hasher,
});
const project = (root, user) => ({
  root,
  name: 'proj',
  dataDirs: ['input'],
  ignore: { names: [], suffixes: [], paths: [] },
  user,
  projectConfig: null,
});
const session = async () => {
  const transport = new LocalTransport({ mode: 'in-process', server });
  return { transport, remote: await openRemote(transport, 'proj') };
};
const timed = async (label, bytes, fn) => {
  const t0 = process.hrtime.bigint();
  const r = await fn();
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(
    `${label.padEnd(28)} ${s.toFixed(2)} s  ${(bytes / s / 1e6).toFixed(1)} MB/s  ${(files / s).toFixed(0)} files/s  kind=${r.kind}`,
  );
  return r;
};

const a = path.join(base, 'a');
for (let i = 0; i < files; i++) {
  const p = path.join(a, 'input', `d${i % 50}`, `f${i}.bin`);
  await mkdir(path.dirname(p), { recursive: true });
  await writeFile(p, randomBytes(size));
}
const total = files * size;
console.log(`${backend}: ${files} files × ${size} B = ${(total / 1e6).toFixed(0)} MB, concurrency 4`);
await timed('init (upload all)', total, async () => {
  const { transport, remote } = await session();
  return runSync({
    project: project(a, 'a@x'),
    clientFs: new LocalClientFilesystem({ root: a, hasher: createXxh3Hasher }),
    remote,
    transport,
    message: 'init',
  });
});
const b = path.join(base, 'b');
await mkdir(b);
await timed('clone (download all)', total, async () => {
  const { transport, remote } = await session();
  return runClone({
    project: project(b, 'b@x'),
    clientFs: new LocalClientFilesystem({ root: b, hasher: createXxh3Hasher }),
    remote,
    transport,
  });
});
const changed = Math.max(1, Math.floor(files / 10));
for (let i = 0; i < changed; i++) await writeFile(path.join(a, 'input', `d${i % 50}`, `f${i}.bin`), randomBytes(size));
await timed(`sync (${changed} changed)`, changed * size, async () => {
  const { transport, remote } = await session();
  return runSync({
    project: project(a, 'a@x'),
    clientFs: new LocalClientFilesystem({ root: a, hasher: createXxh3Hasher }),
    remote,
    transport,
    message: 'edit',
  });
});
await timed('sync (nothing to do)', 0, async () => {
  const { transport, remote } = await session();
  return runSync({
    project: project(a, 'a@x'),
    clientFs: new LocalClientFilesystem({ root: a, hasher: createXxh3Hasher }),
    remote,
    transport,
    message: 'noop',
  });
});
parent?.destroy();
await rm(base, { recursive: true, force: true });
