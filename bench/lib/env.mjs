// The bench's own real parts: a zfs-fuse pool on a sparse file and the test
// sshd, brought up by tooling/testenv in a separate state dir (never the tests').
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync, copyFileSync, chmodSync } from 'node:fs';
import path from 'node:path';
import os from 'node:os';

/**
 * The comparison tools a fresh Debian machine lacks (restic, xxhsum, git),
 * installed from Debian's packages when we are root; otherwise their rows
 * say "not installed".
 */
export function ensureTools() {
  const missing = [
    ['restic', 'restic'],
    ['xxhsum', 'xxhash'],
    ['git', 'git'],
    ['rsync', 'rsync'],
  ]
    .filter(([cmd]) => spawnSync('sh', ['-c', 'command -v "$0"', cmd]).status !== 0)
    .map(([, pkg]) => pkg);
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0) {
    console.log(`bench: not root, cannot install ${missing.join(' ')}; their rows will be missing`);
    return;
  }
  console.log(`bench: installing ${missing.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  execFileSync('apt-get', ['update', '-qq'], { env, stdio: 'ignore' });
  execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], { env, stdio: 'ignore' });
}

export function machine() {
  const v = (cmd, args) => {
    try {
      // some tools (xxhsum) print their version on stderr
      const r = spawnSync(cmd, args, { encoding: 'utf8' });
      if (r.error) throw r.error;
      return (r.stdout.trim() || r.stderr.trim()).split('\n')[0].trim();
    } catch {
      return 'not installed';
    }
  };
  return {
    cores: os.cpus().length,
    cpu: os.cpus()[0]?.model ?? '?',
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    rsync: v('rsync', ['--version']),
    git: v('git', ['--version']),
    restic: v('restic', ['version']),
    xxhsum: v('xxhsum', ['--version']),
    zfs: 'zfs-fuse ' + v('dpkg-query', ['-W', '-f', '${Version}', 'zfs-fuse']),
  };
}

/** Brings up pool + sshd; writes HOME/.ssh (config alias `dsgbench`, known_hosts). */
export function bringUp(repoRoot, workDir, poolSize) {
  const envDir = path.join(workDir, 'env');
  const out = execFileSync('bash', [path.join(repoRoot, 'tooling/testenv/testenv.sh'), 'up'], {
    encoding: 'utf8',
    // the pool's vdev on the disk (not testenv's /dev/shm default): a user's pool is on a disk
    env: {
      ...process.env,
      DSG_TESTENV_DIR: envDir,
      DSG_TEST_POOL: 'dsgbench',
      // the replication target of w15: the bench's own, never the tests' dsgtest2
      DSG_TEST_POOL2: 'dsgbench2',
      DSG_TEST_POOL_SIZE: poolSize,
      DSG_TEST_POOL_IMG_DIR: envDir,
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const env = Object.fromEntries([...out.matchAll(/^export (\w+)=(.*)$/gm)].map((m) => [m[1], m[2]]));
  if (!env.DSG_TEST_POOL || !env.DSG_TEST_SSH_PORT) throw new Error('bench needs zfs-fuse and sshd (run as root)');
  const home = path.join(workDir, 'home');
  mkdirSync(path.join(home, '.ssh'), { recursive: true, mode: 0o700 });
  copyFileSync(env.DSG_TEST_SSH_KEY, path.join(home, '.ssh', 'id_ed25519'));
  chmodSync(path.join(home, '.ssh', 'id_ed25519'), 0o600);
  copyFileSync(env.DSG_TEST_SSH_KNOWN_HOSTS, path.join(home, '.ssh', 'known_hosts'));
  writeFileSync(
    path.join(home, '.ssh', 'config'),
    `Host dsgbench\n  HostName 127.0.0.1\n  Port ${env.DSG_TEST_SSH_PORT}\n  User ${env.DSG_TEST_SSH_USER}\n  IdentityFile ${path.join(home, '.ssh', 'id_ed25519')}\n  IdentitiesOnly yes\n`,
  );
  return { env, envDir, home, pool: env.DSG_TEST_POOL, poolMount: env.DSG_TEST_POOL_MOUNT };
}

export function tearDown(repoRoot, envDir) {
  execFileSync('bash', [path.join(repoRoot, 'tooling/testenv/testenv.sh'), 'down'], {
    env: { ...process.env, DSG_TESTENV_DIR: envDir, DSG_TEST_POOL: 'dsgbench', DSG_TEST_POOL2: 'dsgbench2' },
    stdio: 'inherit',
  });
}

export function readJson(file) {
  return JSON.parse(readFileSync(file, 'utf8'));
}
