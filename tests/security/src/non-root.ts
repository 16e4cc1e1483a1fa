/**
 * The non-root setup of the security suite: the built `dsg` runs as the
 * unprivileged client user (`dsgclient`, spawned with its uid/gid, in a
 * sandbox it owns), and reaches a posix repository owned by the non-root
 * server login (`dsgagent`) over the real sshd. The test itself stays root:
 * it plays the attacker on the server (forging the repository) and checks
 * both sides; whatever it writes into either side is given back to that
 * side's user explicitly, so what dsg and the agent create keeps the owner
 * they gave it — and `strangers()` can prove nobody else wrote there.
 */
import { lstatSync, readdirSync, utimesSync } from 'node:fs';
import path from 'node:path';
import {
  localUser,
  requireClientUser,
  requireSsh,
  requireSudoAgent,
  type LocalUser,
  type SshTestEnv,
} from '@dsg/testenv';
import {
  clientSandbox,
  dsgAsync,
  giveTo,
  ok,
  posixSshBackend,
  write,
  type Backend,
  type RunResult,
  type Sandbox,
  type Scene,
} from '@dsg/reliability';

export interface NonRoot {
  ssh: SshTestEnv;
  /** runs the built dsg */
  client: LocalUser;
  /** the SSH login the agent runs as; owns the repositories */
  server: LocalUser;
}

/** The non-root client and server users and the sshd, or null after a visible skip reason (a failure under DSG_REQUIRE_REAL=1). */
export function requireNonRoot(): NonRoot | null {
  const ssh = requireSsh();
  const agent = requireSudoAgent();
  const client = requireClientUser();
  const server = agent ? localUser(agent.user) : null;
  if (!ssh || !client || !server) return null;
  return { ssh, client, server };
}

export type NonRootBackend = Backend & { root: string; nonRoot: NonRoot };

/** A posix repository root owned by the server user, reached over the real sshd as that login. */
export function nonRootPosixBackend(
  n: NonRoot,
  label = `posix/ssh ${n.client.user} → ${n.server.user}`,
): NonRootBackend {
  const b = posixSshBackend(n.ssh, { login: n.server.user, owner: n.server, label });
  return { ...b, nonRoot: n };
}

export const isNonRoot = (b: Backend): b is NonRootBackend => 'nonRoot' in b;

/** Run the built dsg in a sandbox: as its user when it has one. */
export function run(sb: Sandbox, cwd: string, args: string[], timeoutMs?: number): Promise<RunResult> {
  return dsgAsync(cwd, sb.env, args, timeoutMs, { as: sb.as });
}

/** Write a file into a side as the test (root), then give the file and the directories the write made to `owner`. */
export function writeAs(owner: LocalUser | undefined, base: string, rel: string, content: string | Buffer): void {
  // the first directory the write will create, else the file alone
  let top = path.join(base, rel);
  let p = base;
  for (const c of rel.split('/').slice(0, -1)) {
    p = path.join(p, c);
    if (!exists(p)) {
      top = p;
      break;
    }
  }
  write(path.join(base, rel), content);
  if (owner) giveTo(owner, top);
}

function exists(p: string): boolean {
  try {
    lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

/** Entries under dir NOT owned by uid, as `rel (uid)`: who else wrote there. */
export function strangers(dir: string, uid: number): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const n of readdirSync(d)) {
      const full = path.join(d, n);
      const st = lstatSync(full);
      if (st.uid !== uid) out.push(`${path.relative(dir, full)} (${st.uid})`);
      if (st.isDirectory()) walk(full);
    }
  };
  walk(dir);
  return out.sort();
}

/**
 * `makeScene` of the reliability harness, with the client as the non-root
 * user: a repository at s2 and a working copy A at s1 with one local change.
 */
export async function makeNonRootScene(b: NonRootBackend, name: string): Promise<Scene> {
  const { client } = b.nonRoot;
  const sb = clientSandbox(b.nonRoot.ssh, client);
  const must = async (what: string, cwd: string, ...args: string[]): Promise<void> =>
    void ok(await run(sb, cwd, args), what);
  const A = path.join(sb.dir, 'a');
  writeAs(client, sb.dir, 'a/input/x.csv', 'id,name\n1,Ana\n');
  writeAs(client, A, 'output/y.txt', 'result\n');
  await must('init', A, 'init', ...b.initArgs(name), '--repo-name', name, '-q');
  const B = path.join(sb.dir, 'b');
  await must('clone b', sb.dir, 'clone', ...b.cloneArgs(name), B, '-q');
  writeAs(client, B, 'input/from-b.csv', 'id\n42\n');
  await must('sync b', B, 'sync', '-m', 'from b', '-q');
  writeAs(client, A, 'input/new-in-a.csv', 'local only\n');
  const past = new Date(Date.now() - 3600_000); // old enough for the stat cache to keep it
  utimesSync(path.join(A, 'input', 'new-in-a.csv'), past, past);
  await must('status a', A, 'status', '-q');
  const live = b.liveTree(name);
  if (!live) throw new Error(`${b.label}: no live tree for ${name}`);
  return { sb, b, name, A, live };
}

/** After the test (root) forged the repository: give it back to the server user, as if that login had written it. */
export function settleRepository(b: Backend): void {
  if (isNonRoot(b)) giveTo(b.nonRoot.server, b.root);
}
