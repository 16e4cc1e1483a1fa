import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freshParent, requireSsh, requireZfs, type TestParent } from '@dsg/testenv';
import { syncSchema } from '../src/output/json-schemas.js';
import { AGENT, dsg, listing, ok, sandbox, write } from './helpers.js';

const zfs = requireZfs();
const ssh = requireSsh();
const parents: TestParent[] = [];
afterAll(() => {
  for (const p of parents) p.destroy();
});

/**
 * An agent command that is the real agent bundle with `--log-file`: its last
 * line per session says what the session moved (bytes received over the wire,
 * bytes copied on the server). The agent's counters, not the client's.
 */
function loggingAgent(dir: string): {
  args: string[];
  moved(): { received: number; copied: number; uploads: number; downloads: number };
} {
  const log = path.join(dir, 'agent.log');
  const wrapper = path.join(dir, 'agent-with-log.mjs');
  writeFileSync(
    wrapper,
    `import { spawn } from 'node:child_process';\n` +
      `const c = spawn(process.execPath, [${JSON.stringify(AGENT)}, ...process.argv.slice(2), '--log-file', ${JSON.stringify(log)}], { stdio: 'inherit' });\n` +
      `c.on('exit', (code) => process.exit(code ?? 1));\n`,
  );
  let seen = 0;
  return {
    args: ['--agent', process.execPath, '--agent', wrapper],
    /** the counters of the sessions since the last call */
    moved: () => {
      // the agent writes its last line as its session ends, which the client need not wait for
      let lines = readFileSync(log, 'utf8').split('\n');
      for (let i = 0; i < 100 && !lines.slice(seen).some((l) => l.includes('session moved')); i++) {
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
        lines = readFileSync(log, 'utf8').split('\n');
      }
      let received = 0;
      let copied = 0;
      let uploads = 0;
      let downloads = 0;
      for (const line of lines.slice(seen)) {
        const m =
          /session moved: received (\d+) bytes .* copied (\d+) bytes.*requests: (\d+) uploads, (\d+) downloads/.exec(
            line,
          );
        if (m) {
          received += Number(m[1]);
          copied += Number(m[2]);
          uploads += Number(m[3]);
          downloads += Number(m[4]);
        }
      }
      seen = lines.length - 1; // the last element is the line still being written (or empty)
      return { received, copied, uploads, downloads };
    },
  };
}

const json = (r: ReturnType<typeof dsg>) => syncSchema.parse(JSON.parse(ok(r).stdout));
const noMeta = (rel: string): boolean => rel === '.dsg' || rel.startsWith('.dsg/');

type Target = (dir: string, agent: string[]) => { init: string[]; clone: (name: string) => string[] };

const targets: [string, Target | null][] = [
  [
    'zfs over ssh',
    zfs && ssh
      ? (_dir, agent) => {
          const parent = freshParent(zfs, 'xfer');
          parents.push(parent);
          const common = ['--port', String(ssh.port), '--ssh-user', ssh.user, ...agent];
          return {
            init: [
              '--host',
              ssh.host,
              '--repo-type',
              'zfs',
              '--pool',
              parent.dataset,
              '--repo-path',
              parent.mountpoint,
              ...common,
            ],
            clone: (name) => [
              `${ssh.host}:${parent.mountpoint}/${name}`,
              '--repo-type',
              'zfs',
              '--pool',
              parent.dataset,
              ...common,
            ],
          };
        }
      : null,
  ],
  [
    'posix over ssh',
    ssh
      ? (dir, agent) => {
          const root = path.join(dir, 'repos');
          const common = ['--port', String(ssh.port), '--ssh-user', ssh.user, ...agent];
          return {
            init: ['--host', ssh.host, '--repo-type', 'posix', '--repo-path', root, ...common],
            clone: (name) => [`${ssh.host}:${root}/${name}`, '--repo-type', 'posix', ...common],
          };
        }
      : null,
  ],
];

describe.each(targets)('transfer engine through the built dsg, %s', (_label, target) => {
  it.skipIf(!target)(
    'a renamed directory sends no content either way: the server copies it, the teammate copies locally',
    () => {
      const sb = sandbox(
        `user_id: ana@example.org\nuser_name: Ana\nssh:\n  key_path: ${ssh!.key}\n  known_hosts: ${ssh!.knownHosts}\n`,
      );
      const agent = loggingAgent(sb.dir);
      const t = target!(sb.dir, agent.args);
      const name = `xfer-${process.pid}-${Date.now() % 100000}`;
      const A = path.join(sb.dir, 'a');
      const B = path.join(sb.dir, 'b');
      const size = 13 * 100_000;
      for (let i = 0; i < 13; i++)
        write(path.join(A, 'input', 'raw', `part-${i}.csv`), `${i},`.repeat(50_000).slice(0, 100_000));
      json(dsg(A, sb.env, '--json', 'init', ...t.init, '--repo-name', name));
      const first = agent.moved();
      expect(first.received).toBeGreaterThanOrEqual(size);
      // small files travel packed: the 13 files and the snapshot's metadata in fewer requests than files
      expect(first.uploads).toBeLessThan(13);
      json(dsg(sb.dir, sb.env, '--json', 'clone', ...t.clone(name), 'b'));
      expect(agent.moved().downloads).toBeLessThan(13);

      renameSync(path.join(A, 'input', 'raw'), path.join(A, 'input', 'raw-2026'));
      const up = json(dsg(A, sb.env, '--json', 'sync', '-m', 'renamed raw'));
      expect(up).toMatchObject({ snapshotId: 's2', committed: true });
      expect(up.counts).toMatchObject({ uploaded: 13, deletedRemote: 13, bytes: 0, bytesReused: size });
      const moved = agent.moved();
      expect(moved.copied).toBe(size);
      expect(moved.received).toBeLessThan(64 * 1024); // the new snapshot's manifest, messages and archive only

      const down = json(dsg(B, sb.env, '--json', 'sync'));
      expect(down.counts).toMatchObject({ downloaded: 13, deletedLocal: 13, bytes: 0, bytesReused: size });
      expect(listing(B, noMeta)).toEqual(listing(A, noMeta));
    },
  );
  it.skipIf(!target)(
    'a sync killed -9 mid-upload: the retry sends only what the repository had not verified; the snapshot is byte-identical',
    () => {
      const sb = sandbox(
        `user_id: ana@example.org\nuser_name: Ana\nssh:\n  key_path: ${ssh!.key}\n  known_hosts: ${ssh!.knownHosts}\n`,
      );
      const agent = loggingAgent(sb.dir);
      const t = target!(sb.dir, agent.args);
      const name = `resume-${process.pid}-${Date.now() % 100000}`;
      const A = path.join(sb.dir, 'a');
      write(path.join(A, 'input', 'readme.txt'), 'r');
      json(dsg(A, sb.env, '--json', 'init', ...t.init, '--repo-name', name));
      agent.moved();
      const size = 24 * 200_000;
      for (let i = 0; i < 24; i++)
        write(path.join(A, 'input', 'wave', `w-${i}.bin`), `${i};`.repeat(100_000).slice(0, 200_000));
      // the client kills itself (SIGKILL) as the first upload is verified; the agent outlives it
      const killed = dsg(A, { ...sb.env, DSG_FAULT: 'sync.after-upload' }, '--json', 'sync', '-m', 'wave');
      expect(killed.code).toBe(-1); // killed by a signal, no exit code
      const first = agent.moved();
      expect(first.received).toBeGreaterThan(0);

      // the agent may still be rolling back (parking) the abandoned transaction: its lock says so
      let retry = dsg(A, sb.env, '--json', 'sync', '-m', 'wave');
      for (let i = 0; i < 60 && retry.code === 4; i++) {
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 500);
        retry = dsg(A, sb.env, '--json', 'sync', '-m', 'wave');
      }
      const r = json(retry);
      expect(r).toMatchObject({ snapshotId: 's2', committed: true });
      expect(r.counts.bytes + r.counts.bytesReused).toBe(size);
      expect(r.counts.bytesReused).toBeGreaterThanOrEqual(200_000); // at least the upload verified before the kill
      const second = agent.moved();
      expect(second.received).toBeLessThan(size - r.counts.bytesReused + 64 * 1024); // the remainder and the metadata
      // byte-identical: a fresh clone of s2 is the working tree
      json(dsg(sb.dir, sb.env, '--json', 'clone', ...t.clone(name), 'check'));
      expect(listing(path.join(sb.dir, 'check'), noMeta)).toEqual(listing(A, noMeta));
    },
  );
});
