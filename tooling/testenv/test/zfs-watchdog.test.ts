import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { requireFuseMount } from '../src/index.js';

// zfs-watchdog.sh against stand-ins for zfs-fuse: a process whose pid is the
// "daemon", stub `zpool` and `gdb` first on PATH, and for the hang itself a real
// FUSE mount whose server never answers (a /dev/fuse fd nobody reads). The
// shared zfs-fuse of a running suite is never touched: the watchdog only aborts
// mounts under its own DSG_TESTENV_DIR.
const WATCHDOG = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'zfs-watchdog.sh');
const fuse = requireFuseMount();

interface Env {
  dir: string;
  bin: string;
  children: ChildProcess[];
  pids: number[];
  mounts: string[];
}
let env: Env | undefined;

function setup(zpool: 'answers' | 'hangs'): Env {
  const dir = mkdtempSync(path.join(tmpdir(), 'dsg-watchdog-'));
  const bin = path.join(dir, 'bin');
  mkdirSync(bin);
  const stub = (name: string, body: string): void => {
    writeFileSync(path.join(bin, name), `#!/bin/sh\n${body}\n`);
    chmodSync(path.join(bin, name), 0o755);
  };
  stub('zpool', zpool === 'answers' ? 'echo dsgtest' : 'exec sleep 60');
  stub('gdb', 'echo "gdb stub: $*"');
  writeFileSync(path.join(dir, 'zfs-fuse.log'), 'last words of the daemon\n');
  env = { dir, bin, children: [], pids: [], mounts: [] };
  return env;
}

/** A stand-in daemon: `sleep`, or a node process holding /dev/fuse for a mount it never serves. */
function daemon(e: Env, mountAt?: string): ChildProcess {
  const script = mountAt
    ? `const fs=require('fs'),cp=require('child_process');const fd=fs.openSync('/dev/fuse','r+');` +
      `const r=cp.spawnSync('mount',['-i','-t','fuse','-o','fd=3,rootmode=40000,user_id=0,group_id=0','dsg-watchdog-test',process.argv[1]],{stdio:['ignore','inherit','inherit',fd]});` +
      // a second holder of the fd: killing the daemon alone does not end the connection, only the abort does
      `if(r.status!==0)process.exit(3);const h=cp.spawn('sleep',['600'],{stdio:['ignore','ignore','ignore',fd],detached:true});` +
      `console.log('mounted '+h.pid);setInterval(()=>{},1e6)`
    : 'setInterval(()=>{},1e6)';
  const args = mountAt ? ['-e', script, mountAt] : ['-e', script];
  const c = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  e.children.push(c);
  writeFileSync(path.join(e.dir, 'zfs-fuse.pid'), `${c.pid}\n`);
  return c;
}

function watchdog(e: Env, extra: Record<string, string> = {}): Promise<{ code: number | null; stderr: string }> {
  const c = spawn('bash', [WATCHDOG], {
    env: {
      ...process.env,
      PATH: `${e.bin}:${process.env['PATH']}`,
      DSG_TESTENV_DIR: e.dir,
      DSG_ZFS_POLL_S: '0.2',
      DSG_ZFS_PROBE_EVERY: '2',
      DSG_ZFS_PROBE_S: '1',
      // only the case under test may fire: the suite's own zfs-fuse users run beside this test
      DSG_ZFS_HANG_S: '600',
      ...extra,
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  e.children.push(c);
  let stderr = '';
  c.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => c.on('close', (code) => resolve({ code, stderr })));
}

const exited = (c: ChildProcess): Promise<unknown> =>
  c.exitCode !== null || c.signalCode !== null ? Promise.resolve() : new Promise((r) => c.once('exit', r));
const read = (e: Env, name: string): string =>
  existsSync(path.join(e.dir, name)) ? readFileSync(path.join(e.dir, name), 'utf8') : '';

afterEach(() => {
  if (!env) return;
  for (const c of env.children) c.kill('SIGKILL');
  for (const p of env.pids) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  for (const m of env.mounts) spawnSync('umount', ['-l', m]);
  rmSync(env.dir, { recursive: true, force: true });
  env = undefined;
});

describe('zfs-watchdog.sh (stand-in daemon, stub zpool)', () => {
  it('a daemon that dies is recorded, with the end of its log, and the watchdog ends', async () => {
    const e = setup('answers');
    const d = daemon(e);
    const run = watchdog(e);
    setTimeout(() => d.kill('SIGKILL'), 500);
    const { code, stderr } = await run;
    expect(code).toBe(0);
    expect(read(e, 'zfs-fuse.failed')).toMatch(new RegExp(`zfs-fuse \\(pid ${d.pid}\\) died during the run`));
    expect(read(e, 'zfs-fuse-hang.txt')).toContain('last words of the daemon');
    expect(stderr).toContain('died');
  });

  it('zpool list unanswered twice: recorded, reported (gdb on the daemon), the daemon killed', async () => {
    const e = setup('hangs');
    const d = daemon(e);
    const { code } = await watchdog(e);
    expect(code).toBe(0);
    await exited(d);
    expect(d.signalCode).toBe('SIGKILL');
    expect(read(e, 'zfs-fuse.failed')).toContain('zpool list went unanswered twice');
    const report = read(e, 'zfs-fuse-hang.txt');
    expect(report).toContain(`gdb stub: -batch -nx -p ${d.pid}`);
    expect(report).toContain(`# zfs-fuse threads (pid ${d.pid})`);
  });

  it('a healthy daemon is left alone; the watchdog ends when testenv down removes the pid file', async () => {
    const e = setup('answers');
    const d = daemon(e);
    const run = watchdog(e);
    await new Promise((r) => setTimeout(r, 3000)); // many polls and probes, more than HANG_S
    expect(d.exitCode).toBeNull();
    expect(d.signalCode).toBeNull();
    rmSync(path.join(e.dir, 'zfs-fuse.pid'));
    expect((await run).code).toBe(0);
    expect(read(e, 'zfs-fuse.failed')).toBe('');
    expect(d.signalCode).toBeNull();
  });
});

describe.skipIf(!fuse)('zfs-watchdog.sh (a real FUSE mount nobody answers)', () => {
  it('a process waiting on it in a thread of its pool is found, and freed (ENOTCONN, by the abort: another process holds the fd too), the wait is reported with its kernel stack, the daemon killed', async () => {
    const e = setup('answers');
    const mnt = path.join(e.dir, 'mnt', 'pool', 'ds');
    mkdirSync(mnt, { recursive: true });
    const d = daemon(e, mnt);
    e.mounts.push(mnt);
    await new Promise<void>((resolve, reject) => {
      d.stdout!.on('data', (b: Buffer) => {
        const m = /mounted (\d+)/.exec(b.toString());
        if (m) e.pids.push(Number(m[1]));
        if (m) resolve();
      });
      d.once('exit', (code) => reject(new Error(`the stand-in daemon could not mount (exit ${code})`)));
    });
    // a lookup in the mount: the kernel waits for the server's answer to INIT first, forever. From
    // Node's fs.promises, as in the suite: the waiter is a libuv pool thread, the main thread idles
    const script = `require('fs').promises.stat(process.argv[1]).catch((e) => { console.error(e.message); process.exit(1); })`;
    const waiter = spawn(process.execPath, ['-e', script, path.join(mnt, 'file')], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    e.children.push(waiter);
    let waiterErr = '';
    waiter.stderr.on('data', (b: Buffer) => (waiterErr += b.toString()));
    const waiterDone = new Promise<number | null>((r) => waiter.on('close', (code) => r(code)));
    const { code } = await watchdog(e, { DSG_ZFS_HANG_S: '2' });
    expect(code).toBe(0);
    expect(await waiterDone).not.toBe(0);
    expect(waiterErr).toMatch(/ENOTCONN|ECONNABORTED|not connected|connection abort/);
    await exited(d);
    expect(d.signalCode).toBe('SIGKILL');
    expect(read(e, 'zfs-fuse.failed')).toMatch(/waited 2s on a zfs-fuse FUSE request/);
    const report = read(e, 'zfs-fuse-hang.txt');
    // the thread that waits is not the main one (its tid is not the pid)
    const blocked = new RegExp(
      `## ${waiter.pid}/(\\d+): ${process.execPath.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} -e`,
    );
    const tid = blocked.exec(report)?.[1];
    expect(tid).toBeDefined();
    expect(Number(tid)).not.toBe(waiter.pid);
    expect(report).toMatch(/fuse/); // the kernel stack of the wait
  });
});
