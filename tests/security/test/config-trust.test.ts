// A teammate (a repository collaborator) must not be able to reconfigure
// another teammate through the shared .dsgconfig.yml, nor reach their
// terminal through text dsg prints (security issue, critical 3 and item 7).
// Everything runs through the BUILT dsg: teammates A (the attacker) and B
// (the victim) are two working copies of one repository.
//
// - A commits a .dsgconfig.yml whose agent command runs `touch` on the server
//   (then the real agent, so nothing looks wrong) and later another host and
//   root: B's sync and every later command run no command, still reach the
//   right repository, and B is told once.
// - A widens data_dirs: B's sync refuses with the diff until --accept-config;
//   a widening to .git (planted in the repository as a modified client would
//   commit it) is refused even then, and B's .git/config (a token) is never
//   uploaded.
// - Snapshot messages, user ids and lock holders with terminal escapes (OSC 52
//   clipboard write, CSI 2K line erase) are printed escaped by log, blame and
//   the lock message; --json keeps them exact.
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { requireSsh } from '@dsg/testenv';
import {
  AGENT,
  clientSandbox,
  clientState,
  dsgAsync,
  errorDoc,
  ok,
  posixLocalBackend,
  posixSshBackend,
  readManifest,
  reseal,
  sandbox,
  write,
  writeManifest,
  type Backend,
  type RunResult,
  type Sandbox,
  type Scene,
} from '@dsg/reliability';
import { nonRootPosixBackend, requireNonRoot, strangers, writeAs, type NonRoot } from '../src/non-root.js';

const ssh = requireSsh();
const nonRoot = requireNonRoot();
const cleanups: (() => void)[] = [];
afterAll(() => {
  for (const c of cleanups.reverse()) c();
});

const DEFAULT_IGNORE = {
  names: ['.DS_Store', '__pycache__', '.Rhistory', '.RData', '.ipynb_checkpoints'],
  suffixes: ['.tmp', '.pyc'],
  paths: [] as string[],
};
const IGNORED =
  "the repository's .dsgconfig.yml names another repository/agent; ignored — connection settings are local";
const TOKEN = 'ghp_SECRETsecretSECRETsecret0123456789';
const GIT_CONFIG = `[remote "origin"]\n\turl = https://x-access-token:${TOKEN}@github.com/lab/project.git\n`;

interface Team {
  sb: Sandbox;
  b: Backend;
  name: string;
  A: string;
  B: string;
}

/** The working copy byte for byte, but its caches (clientState leaves them out: every read may refresh them). */
function workingCopy(dir: string): Record<string, string> {
  return clientState(dir);
}

/** The built dsg in the sandbox, as the sandbox's user (the non-root client user on the non-root setup). */
const run = async (cwd: string, sb: Sandbox, ...args: string[]): Promise<RunResult> =>
  dsgAsync(cwd, sb.env, args, 100_000, { as: sb.as });
const must = async (what: string, cwd: string, sb: Sandbox, ...args: string[]): Promise<RunResult> =>
  ok(await run(cwd, sb, ...args), what);

/** A inits the repository with one file, B clones it (`nr`: both as the non-root client user, against the non-root login). */
async function team(b: Backend, name: string, user?: string, nr?: NonRoot): Promise<Team> {
  const sb = nr
    ? clientSandbox(nr.ssh, nr.client)
    : user === undefined
      ? sandbox(b.userYaml)
      : sandbox(b.userYaml, user);
  cleanups.push(() => sb.remove());
  const A = path.join(sb.dir, 'a');
  const B = path.join(sb.dir, 'b');
  writeAs(nr?.client, sb.dir, 'a/input/x.csv', 'id,name\n1,Ana\n');
  await must('init A', A, sb, 'init', ...b.initArgs(name), '--repo-name', name, '-q');
  await must('clone B', sb.dir, sb, 'clone', ...b.cloneArgs(name), B, '-q');
  return { sb, b, name, A, B };
}

/** A .dsgconfig.yml (JSON is YAML) with the given repository block and scope. */
function configText(
  name: string,
  repository: Record<string, unknown>,
  dataDirs = ['input', 'output', 'frozen'],
): string {
  return JSON.stringify({ name, repository, data_dirs: dataDirs, ignore: DEFAULT_IGNORE }, null, 2) + '\n';
}

/** Every file of the repository side (posix: <root>/<name>), as text. */
function repositoryText(b: Backend & { root: string }, name: string): string {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const n of readdirSync(d)) {
      const f = path.join(d, n);
      const st = statSync(f);
      if (st.isDirectory()) walk(f);
      else if (st.isFile()) out.push(`${path.relative(b.root, f)}\n${readFileSync(f).toString('latin1')}`);
    }
  };
  walk(path.join(b.root, name));
  return out.join('\n');
}

/** root client and root login; the non-root client user and the non-root login (each its own file owner) */
const setups: [string, NonRoot | undefined][] = ssh ? [['root → root', undefined]] : [];
if (nonRoot) setups.push([`${nonRoot.client.user} → ${nonRoot.server.user}`, nonRoot]);

describe.each(setups)(
  'a .dsgconfig.yml from a teammate never connects anywhere (posix over the real sshd, %s)',
  (_label, nr) => {
    it('an agent command, host and root committed by A: no command runs for B, B stays on its repository, B is told once', async () => {
      const b = nr ? nonRootPosixBackend(nr) : posixSshBackend(ssh!);
      const login = nr ? nr.server.user : ssh!.user;
      /** what the test (the teammate's editor) writes into a working copy belongs to the client user */
      const edit = (dir: string, rel: string, text: string): void => writeAs(nr?.client, dir, rel, text);
      cleanups.push(() => b.destroy());
      const t = await team(b, 'sec-agent', undefined, nr);
      const pwned = path.join(os.tmpdir(), `dsg-pwned-${randomBytes(6).toString('hex')}`);
      cleanups.push(() => rmSync(pwned, { force: true }));
      // stealthy: the command runs, then execs the real agent, so every command still works
      const evilAgent = ['sh', '-c', `touch ${pwned}; exec "$@"`, 'sh', process.execPath, AGENT];
      // A keeps the file working for a dsg that trusts it: same host, port, login; only the agent differs
      const honest = { type: 'posix', host: ssh!.host, root: b.root, port: ssh!.port, user: login };
      edit(t.A, '.dsgconfig.yml', configText(t.name, { ...honest, agent: evilAgent }));
      const a1 = await must('A commits the agent', t.A, t.sb, 'sync', '-m', 'tooling');
      rmSync(pwned, { force: true }); // whatever A's own run did, only B's runs count from here

      const b1 = await must('B syncs', t.B, t.sb, 'sync', '-m', 'b pulls');
      expect(readFileSync(path.join(t.B, '.dsgconfig.yml'), 'utf8')).toContain('touch'); // the file arrived
      const later: RunResult[] = [];
      for (const cmd of [['status'], ['log'], ['list-files'], ['validate-chain']])
        later.push(await must(`B ${cmd[0]}`, t.B, t.sb, ...cmd));
      expect(existsSync(pwned), 'a command from the repository ran on the server for B').toBe(false);
      // A is told too (its own edit does not reconfigure its own copy either); B is told once
      expect(a1.stderr).toContain(IGNORED);
      expect(b1.stderr).toContain(IGNORED);
      expect(b1.stderr).toMatch(/differs: repository\.agent\)/);
      for (const r of later) expect(r.stderr, 'reported once, not on every command').not.toContain(IGNORED);
      expect(readFileSync(path.join(t.B, '.dsg', 'config.local.yml'), 'utf8')).not.toContain('touch');

      // now another host (an alias B might have) and another root: still ignored
      edit(
        t.A,
        '.dsgconfig.yml',
        configText(t.name, {
          type: 'posix',
          host: 'evil-alias',
          root: '/tmp/attacker-root',
          agent: evilAgent,
          port: 1,
          user: 'eve',
        }),
      );
      await must('A commits host and root', t.A, t.sb, 'sync', '-m', 'moved');
      rmSync(pwned, { force: true });
      const b2 = await must('B syncs again', t.B, t.sb, 'sync', '-m', 'b pulls again');
      expect(b2.stderr).toContain(IGNORED);
      const differs = /differs: ([^)]*)\)/.exec(b2.stderr)?.[1]?.split(', ').sort();
      expect(differs).toEqual([
        'repository.agent',
        'repository.host',
        'repository.port',
        'repository.root',
        'repository.user',
      ]);
      edit(t.B, 'input/from-b.csv', 'id\n7\n');
      const b3 = JSON.parse((await must('B uploads', t.B, t.sb, '--json', 'sync', '-m', 'from b')).stdout) as {
        snapshotId: string;
        repository: string;
      };
      // B's data went to the right repository, over the right host, with no command of A's
      expect(b3.repository).toBe(`${ssh!.host}:${b.root}/${t.name} (posix)`);
      expect(b.snapshots(t.name)).toEqual(['s1', 's2', 's3', 's4']);
      expect(b3.snapshotId).toBe('s4');
      expect(readFileSync(path.join(b.liveTree(t.name)!, 'input', 'from-b.csv'), 'utf8')).toBe('id\n7\n');
      expect(existsSync('/tmp/attacker-root')).toBe(false);
      expect(existsSync(pwned), 'a command from the repository ran on the server for B').toBe(false);
      if (nr) {
        // it all ran as the two non-root users: each side holds only its own user's files
        expect(strangers(t.sb.dir, nr.client.uid)).toEqual([]);
        expect(strangers(path.join(b.root, t.name), nr.server.uid)).toEqual([]);
      }
    });
  },
);

describe('a change of data dirs from a teammate needs consent; .git never becomes data (posix)', () => {
  it('B refuses with the diff, status shows it, --accept-config takes it from the next sync', async () => {
    const b = posixLocalBackend();
    cleanups.push(() => b.destroy());
    const t = await team(b, 'sec-scope');
    write(path.join(t.B, '.git', 'config'), GIT_CONFIG);
    const local = { type: 'posix', host: 'localhost', root: b.root };

    // 1. A widens to docs (an honest edit, committed with dsg)
    writeFileSync(path.join(t.A, '.dsgconfig.yml'), configText(t.name, local, ['input', 'output', 'docs']));
    await must('A widens', t.A, t.sb, 'sync', '-m', 'docs are data');
    const status = JSON.parse((await must('B status', t.B, t.sb, '--json', 'status')).stdout) as {
      configChange: Record<string, unknown> | null;
    };
    expect(status.configChange).toMatchObject({
      dataDirs: { added: ['docs'], removed: ['frozen'] },
      scopeChanged: true,
      invalid: null,
    });
    const human = await must('B status (human)', t.B, t.sb, 'status');
    expect(human.stdout).toMatch(
      /Configuration change from the repository \(\.dsgconfig\.yml\):\n {2}data dirs: \+ docs, - frozen\n.*dsg sync --accept-config/,
    );

    const dry = await must('B sync --dry-run', t.B, t.sb, 'sync', '--dry-run');
    expect(dry.stderr).toMatch(
      /changes what is synced; `dsg sync` will refuse it without --accept-config:\nwarning: {3}data dirs: \+ docs, - frozen/,
    );
    write(path.join(t.B, 'docs', 'notes.txt'), 'b notes\n');
    const before = workingCopy(t.B);
    const snapsBefore = b.snapshots(t.name);
    const refused = await run(t.B, t.sb, '--json', 'sync', '-m', 'b');
    expect(refused.code, refused.stderr).toBe(1);
    const doc = errorDoc(refused) as ReturnType<typeof errorDoc> & { error: { details?: { configChange?: unknown } } };
    expect(doc.error.code).toBe('CONFIG_CHANGE');
    expect(doc.error.message).toMatch(/changes what is synced \(data dirs: \+ docs, - frozen\); nothing was changed/);
    expect(doc.error.recoveryHint).toMatch(/dsg sync --accept-config/);
    expect(doc.error.details?.configChange).toMatchObject({ dataDirs: { added: ['docs'], removed: ['frozen'] } });
    expect(refused.stderr).toMatch(/warning: {3}data dirs: \+ docs, - frozen\n/);
    expect(workingCopy(t.B), 'a refused sync changes nothing here').toEqual(before);
    expect(b.snapshots(t.name)).toEqual(snapsBefore);

    const accepted = JSON.parse(
      (await must('B accepts', t.B, t.sb, '--json', 'sync', '--accept-config', '-m', 'b accepts')).stdout,
    ) as { configChange: unknown };
    expect(accepted.configChange).toMatchObject({ dataDirs: { added: ['docs'], removed: ['frozen'] } });
    expect(readFileSync(path.join(t.B, '.dsgconfig.yml'), 'utf8')).toContain('docs');
    // the new scope applies from the next scan: now docs/notes.txt is B's data
    await must('B syncs docs', t.B, t.sb, 'sync', '-m', 'b docs');
    expect(readFileSync(path.join(b.liveTree(t.name)!, 'docs', 'notes.txt'), 'utf8')).toBe('b notes\n');

    expect(repositoryText(b, t.name)).not.toContain(TOKEN);
  });

  it('a .git widening (as a modified client would commit it) is refused even with --accept-config: .git/config and its token never leave B', async () => {
    const b = posixLocalBackend();
    cleanups.push(() => b.destroy());
    const t = await team(b, 'sec-git');
    write(path.join(t.B, '.git', 'config'), GIT_CONFIG);
    const local = { type: 'posix', host: 'localhost', root: b.root };
    const live = b.liveTree(t.name)!;
    const evil = configText(t.name, local, ['input', 'output', 'frozen', '.git']);
    // the repository's root copy of the config (it travels beside the manifest, no entry to reseal)
    writeFileSync(path.join(live, '.dsgconfig.yml'), evil);

    const before = workingCopy(t.B);
    const runs: RunResult[] = [];
    // B syncs, accepts, and syncs again: a dsg that took the file would scan .git the second time
    for (const args of [['sync'], ['sync', '--accept-config'], ['sync']])
      runs.push(await run(t.B, t.sb, '--json', ...args, '-m', 'b'));
    expect(repositoryText(b, t.name), "B's .git/config reached the repository").not.toContain(TOKEN);
    expect(b.snapshots(t.name)).toEqual(['s1']);
    for (const [k, r] of runs.entries()) {
      expect(r.code, `run ${k}: ${r.stderr}`).toBe(2);
      const e = errorDoc(r);
      expect(e.error.code).toBe('CONFIG');
      expect(e.error.message).toMatch(
        /^the repository's \.dsgconfig\.yml is invalid: .*data_dirs\.3: expected a relative directory inside the project/,
      );
      expect(e.error.recoveryHint).toMatch(/^Nothing was changed\./);
      expect(r.stderr).toMatch(/data dirs: \+ \.git/);
    }
    expect(workingCopy(t.B), 'nothing changed here').toEqual(before);
    expect(readFileSync(path.join(t.B, '.dsgconfig.yml'), 'utf8')).not.toContain('.git');
    const st = JSON.parse((await must('B status', t.B, t.sb, '--json', 'status')).stdout) as {
      configChange: { dataDirs: { added: string[] }; invalid: string | null };
    };
    expect(st.configChange.dataDirs.added).toEqual(['.git']);
    expect(st.configChange.invalid).toMatch(/data_dirs\.3: expected a relative directory inside the project/);
  });
});

describe('remote text reaches the terminal escaped (posix)', () => {
  const OSC52 = '\u001b]52;c;ZWNobyBwd25lZA==\u0007';
  const ERASE = '\u001b[2K';
  // eslint-disable-next-line no-control-regex -- the very characters that must not reach a terminal
  const RAW = /[\u0007\u001b\u009b]/;

  it('snapshot messages, user ids and lock holders with escapes: log, blame and the lock message print them escaped; --json is exact', async () => {
    const b = posixLocalBackend();
    cleanups.push(() => b.destroy());
    const t = await team(b, 'sec-esc');
    // the repository's history as a modified client (or an old one) could write it
    const live = b.liveTree(t.name)!;
    const msgFile = path.join(live, '.dsg', 'sync-messages.json');
    const msgs = JSON.parse(readFileSync(msgFile, 'utf8')) as { snapshots: Record<string, Record<string, unknown>> };
    Object.assign(msgs.snapshots['s1']!, {
      snapshot_message: `init ${OSC52}done`,
      created_by: `eve${ERASE}@example.org`,
    });
    writeFileSync(msgFile, JSON.stringify(msgs, null, 2));
    const s = { live } as Scene;
    const m = readManifest(s);
    m.entries['input/x.csv']!['user'] = `eve${ERASE}@example.org`;
    writeManifest(s, reseal(m));

    for (const cmd of [['log'], ['blame', 'input/x.csv']]) {
      const r = await must(cmd[0]!, t.B, t.sb, ...cmd);
      expect(r.stdout + r.stderr, `${cmd[0]}: no raw control character`).not.toMatch(RAW);
      expect(r.stdout, cmd[0]).toContain('\\e]52;c;ZWNobyBwd25lZA==\\a');
      expect(r.stdout, cmd[0]).toContain('eve\\e[2K@example.org');
    }
    const j = JSON.parse((await must('log --json', t.B, t.sb, '--json', 'log')).stdout) as {
      snapshots: { message: string; user: string }[];
    };
    expect(j.snapshots.at(-1)).toMatchObject({ message: `init ${OSC52}done`, user: `eve${ERASE}@example.org` });

    // a lock held by a live process whose holder names carry escapes
    writeFileSync(
      b.lockFile(t.name),
      JSON.stringify({
        holder: { user: `mallory${ERASE}@x`, host: `h${OSC52}`, pid: process.pid, since: '2026-01-01T00:00:00Z' },
        agent: { host: os.hostname(), pid: process.pid, session: 'test' },
      }) + '\n',
    );
    cleanups.push(() => rmSync(b.lockFile(t.name), { force: true }));
    write(path.join(t.B, 'input', 'y.csv'), 'id\n2\n');
    const locked = await run(t.B, t.sb, 'sync', '-m', 'b');
    expect(locked.code, locked.stderr).toBe(4);
    expect(locked.stderr).not.toMatch(RAW);
    expect(locked.stderr).toContain('locked by mallory\\e[2K@x on h\\e]52;c;ZWNobyBwd25lZA==\\a');
    const lockedJson = await run(t.B, t.sb, '--json', 'sync', '-m', 'b');
    expect(errorDoc(lockedJson).error.message).toContain(`locked by mallory${ERASE}@x on h${OSC52}`);
  });
});
