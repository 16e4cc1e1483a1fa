// Micro-benchmark: ways to walk a tree of many small files and get each
// file's size, mtime and inode (what a warm scan needs), against `find
// -printf` and `git status` on the same tree. Each strategy runs in its own
// Node process (a CLI walks once, cold JIT), RUNS times; the minimum and
// median of the walk alone and of the whole process are printed.
//
//   node bench/micro/scan-walk.mjs [DIR]      (FILES=100000 RUNS=5 by default)
//
// Without DIR a tree of FILES × 1 KiB files in directories of 1,000 is made
// under the OS temp directory (and removed at the end); with DIR that tree
// is used as it is (`git status` only when DIR is a git work tree).
import { spawnSync } from 'node:child_process';
import { existsSync, lstat, lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { lstat as lstatP, readdir as readdirP } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

const FILES = Number(process.env.FILES ?? 100_000);
const RUNS = Number(process.env.RUNS ?? 5);

/** Each strategy: walk `root`, return how many files it saw with their size, mtime and inode. */
const strategies = {
  /** readdirSync(names) + lstatSync of every name (the scanner before this change). */
  'sync names+lstat': (root) => {
    let n = 0;
    const walk = (dir) => {
      for (const name of readdirSync(dir)) {
        const full = `${dir}/${name}`;
        const st = lstatSync(full);
        if (st.isDirectory()) walk(full);
        else if (st.isFile()) n += st.size >= 0 && st.mtimeMs > 0 && st.ino > 0 ? 1 : 0;
      }
    };
    walk(root);
    return n;
  },
  /** readdirSync(withFileTypes): directories and links known from d_type, lstatSync only for files. */
  'sync dirents+lstat': (root) => {
    let n = 0;
    const walk = (dir) => {
      for (const d of readdirSync(dir, { withFileTypes: true })) {
        const full = `${dir}/${d.name}`;
        if (d.isDirectory()) walk(full);
        else if (d.isFile()) {
          const st = lstatSync(full, { throwIfNoEntry: false });
          if (st?.isFile()) n += st.size >= 0 && st.mtimeMs > 0 && st.ino > 0 ? 1 : 0;
        }
      }
    };
    walk(root);
    return n;
  },
  /** the same, but the walk yields to the event loop every 2,000 files (what a CLI's progress needs). */
  'sync dirents+lstat, yielding': async (root) => {
    let n = 0;
    let budget = 2000;
    const walk = async (dir) => {
      for (const d of readdirSync(dir, { withFileTypes: true })) {
        const full = `${dir}/${d.name}`;
        if (d.isDirectory()) await walk(full);
        else if (d.isFile()) {
          const st = lstatSync(full, { throwIfNoEntry: false });
          if (st?.isFile()) n += st.size >= 0 && st.mtimeMs > 0 && st.ino > 0 ? 1 : 0;
          if (--budget === 0) {
            budget = 2000;
            await new Promise((r) => setImmediate(r));
          }
        }
      }
    };
    await walk(root);
    return n;
  },
  /** callback fs.lstat through libuv's thread pool, CONC in flight (no promise per call). */
  'libuv lstat cb, 64 in flight': (root) =>
    new Promise((resolve, reject) => {
      const CONC = 64;
      const queue = [];
      const stack = [root];
      let n = 0;
      let inflight = 0;
      const pump = () => {
        while (inflight < CONC && (queue.length || stack.length)) {
          if (!queue.length) {
            const dir = stack.pop();
            for (const d of readdirSync(dir, { withFileTypes: true })) {
              if (d.isDirectory()) stack.push(`${dir}/${d.name}`);
              else if (d.isFile()) queue.push(`${dir}/${d.name}`);
            }
            continue;
          }
          const f = queue.pop();
          inflight++;
          lstat(f, (err, st) => {
            inflight--;
            if (err) return reject(err);
            if (st.isFile()) n++;
            if (!inflight && !queue.length && !stack.length) resolve(n);
            else pump();
          });
        }
      };
      pump();
      if (!inflight) resolve(n);
    }),
  /** fs.promises: readdir + lstat of a directory's files with Promise.all (one promise per file). */
  'libuv promises, per directory': async (root) => {
    let n = 0;
    const walk = async (dir) => {
      const ds = await readdirP(dir, { withFileTypes: true });
      const sts = await Promise.all(ds.filter((d) => d.isFile()).map((d) => lstatP(`${dir}/${d.name}`)));
      n += sts.filter((s) => s.isFile()).length;
      for (const d of ds) if (d.isDirectory()) await walk(`${dir}/${d.name}`);
    };
    await walk(root);
    return n;
  },
  /** fdir (a maintained crawler: readdir withFileTypes, no stat) for the list, then lstatSync per file. */
  'fdir list + lstatSync': async (root) => {
    const { fdir } = await loadFdir();
    const files = new fdir().withFullPaths().crawl(root).sync();
    let n = 0;
    for (const f of files) {
      const st = lstatSync(f, { throwIfNoEntry: false });
      if (st?.isFile()) n++;
    }
    return n;
  },
  /** fdir's listing alone: the floor of any walk that still has to stat each file. */
  'fdir list only (no stat)': async (root) => {
    const { fdir } = await loadFdir();
    return new fdir().crawl(root).sync().length;
  },
};

/** fdir is not a dependency of dsg; the bench finds the copy the workspace's tools already install. */
async function loadFdir() {
  try {
    return await import('fdir');
  } catch {
    const store = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../node_modules/.pnpm');
    const dir = existsSync(store) ? readdirSync(store).find((d) => d.startsWith('fdir@')) : undefined;
    if (!dir) throw new Error('fdir not installed');
    return import(path.join(store, dir, 'node_modules/fdir/dist/index.mjs'));
  }
}

// Child mode: run one strategy once and print its walk time.
if (process.argv[2] === '--one') {
  const [, , , name, root] = process.argv;
  const t0 = performance.now();
  const n = await strategies[name](root);
  console.log(JSON.stringify({ n, ms: performance.now() - t0 }));
  process.exit(0);
}

function makeTree(root, files) {
  const buf = Buffer.alloc(1024, 7);
  for (let i = 0; i < files; i++) {
    const dir = path.join(root, 'input', `d${Math.floor(i / 1000)}`);
    if (i % 1000 === 0) mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, `s${i}.dat`), buf);
  }
}

function timeProcess(cmd, args, opts = {}) {
  const t0 = performance.now();
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 30, ...opts });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.status}\n${r.stderr}`);
  return { ms, out: r.stdout };
}

const stat = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return { min: s[0], median: s[Math.floor(s.length / 2)] };
};
const fmt = (x) => `${x.toFixed(0).padStart(5)} ms`;

let root = process.argv[2];
let made = false;
if (!root) {
  root = mkdtempSync(path.join(os.tmpdir(), 'dsg-scan-walk-'));
  made = true;
  const t0 = performance.now();
  makeTree(root, FILES);
  console.log(`made ${FILES} files in ${((performance.now() - t0) / 1000).toFixed(1)} s under ${root}`);
}
const walkRoot = existsSync(path.join(root, 'input')) ? path.join(root, 'input') : root;
try {
  console.log(
    `node ${process.version}, ${os.cpus().length} cores, load ${os.loadavg()[0].toFixed(2)}; ${RUNS} runs each`,
  );
  console.log(`${'strategy'.padEnd(34)} ${'walk min'.padStart(9)} ${'median'.padStart(9)}   process min  median`);
  const show = (name, walk, proc) =>
    console.log(
      `${name.padEnd(34)} ${walk ? fmt(walk.min) : '        -'} ${walk ? fmt(walk.median) : '        -'}   ${fmt(proc.min)} ${fmt(proc.median)}`,
    );
  const find = [];
  for (let i = 0; i <= RUNS; i++) {
    const r = timeProcess('find', [walkRoot, '-printf', '%s %T@ %i\n']);
    if (i) find.push(r.ms);
  }
  show('find -printf "%s %T@ %i"', null, stat(find));
  if (existsSync(path.join(root, '.git'))) {
    const git = [];
    for (let i = 0; i <= RUNS; i++) {
      const r = timeProcess('git', ['status', '--porcelain'], { cwd: root });
      if (i) git.push(r.ms);
    }
    show('git status --porcelain', null, stat(git));
  }
  const self = new URL(import.meta.url).pathname;
  for (const name of Object.keys(strategies)) {
    const walk = [];
    const proc = [];
    let files = -1;
    try {
      for (let i = 0; i <= RUNS; i++) {
        const r = timeProcess(process.execPath, [self, '--one', name, walkRoot]);
        const o = JSON.parse(r.out);
        files = o.n;
        if (i) {
          walk.push(o.ms);
          proc.push(r.ms);
        }
      }
    } catch (e) {
      console.log(`${name.padEnd(34)} skipped: ${e.message.split('\n')[0]}`);
      continue;
    }
    show(`${name} (${files})`, stat(walk), stat(proc));
  }
} finally {
  if (made) rmSync(root, { recursive: true, force: true });
}
