import { readFileSync, existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import path from 'node:path';

export interface ZfsTestEnv {
  pool: string;
  /** where the pool's root dataset is mounted */
  mount: string;
}

export interface SshTestEnv {
  host: string;
  port: number;
  user: string;
  /** private key file made for this run */
  key: string;
  /** known_hosts with the test sshd's host key */
  knownHosts: string;
  /** the sshd's public host key file */
  hostPub: string;
  /**
   * The replication key (DSG_TEST_SSH_REPLICA_KEY), or null: same user, but
   * its authorized_keys entry runs each command with the zfs-fuse
   * compatibility wrapper (zfs-compat/zfs) first on PATH, so syncoid can list
   * snapshots on the replica side. Only for the replication-over-ssh tests.
   */
  replicaKey: string | null;
}

export function testenvDir(): string {
  return process.env['DSG_TESTENV_DIR'] ?? '/tmp/dsg-testenv';
}

/** Settings from the environment, else from the env file `testenv.sh up` wrote. */
export function settings(): Record<string, string> {
  const out: Record<string, string> = {};
  const file = path.join(testenvDir(), 'env');
  if (existsSync(file)) {
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      const m = /^export ([A-Z0-9_]+)=(.*)$/.exec(line.trim());
      if (m) out[m[1]!] = m[2]!;
    }
  }
  for (const [k, v] of Object.entries(process.env)) if (k.startsWith('DSG_TEST') && v !== undefined) out[k] = v;
  return out;
}

let zfsCache: ZfsTestEnv | null | undefined;
let sshCache: SshTestEnv | null | undefined;

/** The test pool if it is configured AND answers `zpool list`, else null. */
export function zfsEnv(): ZfsTestEnv | null {
  if (zfsCache !== undefined) return zfsCache;
  const s = settings();
  const pool = s['DSG_TEST_POOL'];
  const mount = s['DSG_TEST_POOL_MOUNT'];
  zfsCache = null;
  if (pool && mount) {
    const r = spawnSync('zpool', ['list', '-H', '-o', 'name,health', pool], { encoding: 'utf8' });
    if (r.status === 0 && r.stdout.includes('ONLINE')) zfsCache = { pool, mount };
  }
  return zfsCache;
}

/**
 * The replication key: DSG_TEST_SSH_REPLICA_KEY, else the file `up` makes
 * when its authorized_keys entry is there (an env file rewritten by an
 * older testenv.sh leaves the variable out, the key and entry stay).
 */
function replicaKey(s: Record<string, string>): string | null {
  const given = s['DSG_TEST_SSH_REPLICA_KEY'];
  if (given) return existsSync(given) ? given : null;
  const key = path.join(testenvDir(), 'ssh', 'id_replica');
  const auth = path.join(testenvDir(), 'ssh', 'authorized_keys');
  if (!existsSync(key) || !existsSync(auth)) return null;
  return readFileSync(auth, 'utf8').includes(' dsg-testenv-replica\n') ? key : null;
}

/** The test sshd if configured and its key files exist, else null. */
export function sshEnv(): SshTestEnv | null {
  if (sshCache !== undefined) return sshCache;
  const s = settings();
  const need = [
    'DSG_TEST_SSH_HOST',
    'DSG_TEST_SSH_PORT',
    'DSG_TEST_SSH_USER',
    'DSG_TEST_SSH_KEY',
    'DSG_TEST_SSH_KNOWN_HOSTS',
  ];
  sshCache = null;
  if (need.every((k) => s[k]) && existsSync(s['DSG_TEST_SSH_KEY']!)) {
    sshCache = {
      host: s['DSG_TEST_SSH_HOST']!,
      port: Number(s['DSG_TEST_SSH_PORT']),
      user: s['DSG_TEST_SSH_USER']!,
      key: s['DSG_TEST_SSH_KEY']!,
      knownHosts: s['DSG_TEST_SSH_KNOWN_HOSTS']!,
      hostPub: s['DSG_TEST_SSH_HOST_PUB'] ?? '',
      replicaKey: replicaKey(s),
    };
  }
  return sshCache;
}

export function requireReal(): boolean {
  return process.env['DSG_REQUIRE_REAL'] === '1';
}

function absent(part: string): void {
  const msg = `${part} is not available: run \`bash tooling/testenv/testenv.sh up\` (as root)`;
  if (requireReal()) throw new Error(`DSG_REQUIRE_REAL=1 but ${msg}`);
  console.warn(`[dsg-testenv] SKIPPING ${part} tests: ${msg}`);
}

/**
 * The real ZFS pool, or null after printing a visible skip reason. Under
 * DSG_REQUIRE_REAL=1 a missing pool throws, so the test file FAILS.
 * Use: `const zfs = requireZfs(); describe.skipIf(!zfs)(…)`.
 */
export function requireZfs(): ZfsTestEnv | null {
  const z = zfsEnv();
  if (!z) absent('ZFS (zfs-fuse test pool)');
  return z;
}

/**
 * The second pool on the same daemon (DSG_TEST_POOL2), the target of the
 * replication tests; null after a visible skip reason, throws under
 * DSG_REQUIRE_REAL=1.
 */
export function requireSecondPool(): ZfsTestEnv | null {
  const s = settings();
  const pool = s['DSG_TEST_POOL2'];
  const mount = s['DSG_TEST_POOL2_MOUNT'];
  let env: ZfsTestEnv | null = null;
  if (pool && mount) {
    const r = spawnSync('zpool', ['list', '-H', '-o', 'name,health', pool], { encoding: 'utf8' });
    if (r.status === 0 && r.stdout.includes('ONLINE')) env = { pool, mount };
  }
  if (!env) absent('second ZFS pool (DSG_TEST_POOL2, the replication target)');
  return env;
}

/** The real sshd, or null after a visible skip reason; throws under DSG_REQUIRE_REAL=1. */
export function requireSsh(): SshTestEnv | null {
  const s = sshEnv();
  if (!s) absent('SSH (test sshd on 127.0.0.1)');
  return s;
}

/**
 * The real sshd with the replication key (`sshEnv().replicaKey`), for
 * syncoid over ssh against zfs-fuse; null after a visible skip reason,
 * throws under DSG_REQUIRE_REAL=1.
 */
export function requireReplicaSsh(): (SshTestEnv & { replicaKey: string }) | null {
  const s = sshEnv();
  if (!s?.replicaKey) {
    absent('SSH replication key (DSG_TEST_SSH_REPLICA_KEY)');
    return null;
  }
  return { ...s, replicaKey: s.replicaKey };
}

/**
 * The non-root login the sudo tests connect as (same key and sshd as
 * requireSsh), with the README's sudo rule for parent dataset `<pool>/sudo-e2e`;
 * null after a visible skip reason, throws under DSG_REQUIRE_REAL=1.
 */
export function requireSudoAgent(): { ssh: SshTestEnv; user: string; parentName: string } | null {
  const ssh = sshEnv();
  const user = settings()['DSG_TEST_SSH_SUDO_USER'];
  if (!ssh || !user) {
    absent('non-root agent (login with the sudo rule)');
    return null;
  }
  return { ssh, user, parentName: 'sudo-e2e' };
}

/** An unprivileged local user, for spawning processes as it (`uid`/`gid` of `spawn`, never a su/sudo command line). */
export interface LocalUser {
  user: string;
  uid: number;
  gid: number;
  /** its home directory from the passwd database */
  home: string;
}

/** uid, gid and home of a local user from the passwd database, or null when there is no such user. */
export function localUser(user: string): LocalUser | null {
  const r = spawnSync('getent', ['passwd', user], { encoding: 'utf8' });
  const f = r.status === 0 ? r.stdout.trim().split(':') : [];
  if (f.length < 7) return null;
  return { user, uid: Number(f[2]), gid: Number(f[3]), home: f[5]! };
}

/**
 * The non-root client user `testenv.sh up` made (DSG_TEST_CLIENT_USER, default
 * dsgclient): tests run the built `dsg` as it. Null after a visible skip
 * reason; throws under DSG_REQUIRE_REAL=1. Needs root to spawn as it.
 */
export function requireClientUser(): LocalUser | null {
  const name = settings()['DSG_TEST_CLIENT_USER'];
  const u = name && process.getuid?.() === 0 ? localUser(name) : null;
  if (!u) absent('non-root client user (run as root)');
  return u;
}

/** The local npm registry `testenv.sh up` started (verdaccio) and a token that may publish @dsg/* to it. */
export interface RegistryTestEnv {
  /** base URL with a trailing slash, e.g. http://127.0.0.1:4873/ */
  url: string;
  token: string;
}

/** The test registry, or null after a visible skip reason; throws under DSG_REQUIRE_REAL=1. */
export function requireRegistry(): RegistryTestEnv | null {
  const s = settings();
  const url = s['DSG_TEST_REGISTRY'];
  const tokenFile = s['DSG_TEST_REGISTRY_TOKEN_FILE'];
  if (url && tokenFile && existsSync(tokenFile)) return { url, token: readFileSync(tokenFile, 'utf8').trim() };
  absent('npm registry (verdaccio on 127.0.0.1)');
  return null;
}

/** Root with /dev/fuse, so a test may mount a FUSE file system of its own; false after a visible skip reason. */
export function requireFuseMount(): boolean {
  const ok = process.getuid?.() === 0 && existsSync('/dev/fuse');
  if (!ok) absent('FUSE mounts (root and /dev/fuse)');
  return ok;
}
