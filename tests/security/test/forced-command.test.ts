/**
 * A key locked down the way apps/agent/README.md documents it ("Locking a
 * key down"): the server login's authorized_keys forces
 * `command="<node> <agent bundle> serve --type posix --root <root>
 * --restrict-to-repository proj",restrict` (and a second key adds
 * `--read-only`). Through the BUILT dsg, as the non-root client user,
 * against the non-root server login, over a real sshd that reads those
 * lines: sshd runs the forced command whatever the client asks for (the
 * client's own agent command here does not even exist), the allowed
 * repository works (init, clone, sync both ways), any other repository is
 * refused with RESTRICTED, and the read-only key clones, shows status and
 * log and is refused a sync with READ_ONLY — nothing changes on the server.
 *
 * The sshd is this file's own (a second one on another 127.0.0.1 port, its
 * AuthorizedKeysFile a directory of this test), so the forced lines never
 * touch the testenv sshd the other tests share; it is stopped by its pid.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AGENT, clientSandbox, errorDoc, ok, type RunResult, type Sandbox } from '@dsg/reliability';
import { nonRootPosixBackend, requireNonRoot, run, strangers, writeAs, type NonRootBackend } from '../src/non-root.js';

const nr = requireNonRoot();
const BUNDLE = process.env['DSG_SECURITY_AGENT'] ?? AGENT;
const HANG_GUARD = 240_000;
/** every word of a forced command must be plain: sshd hands the line to the login's shell */
const PLAIN = /^[A-Za-z0-9_/.,:=+@-]+$/;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (typeof a === 'object' && a ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

interface Sshd {
  child: ChildProcess;
  /** the commands sshd logged it forced on a session, in order */
  forced: string[];
}

/** `/usr/sbin/sshd -D -e -f config` as our child; resolves once it listens. */
function startSshd(config: string): Promise<Sshd> {
  const child = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  let line = '';
  const forced: string[] = [];
  return new Promise((resolve, reject) => {
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      log = (log + d).slice(-20_000);
      const lines = (line + d).split('\n');
      line = lines.pop()!;
      for (const l of lines) {
        const m = /Starting session: forced-command \(key-option\) '([^']*)'/.exec(l);
        if (m) forced.push(m[1]!);
        if (/Server listening on/.test(l)) resolve({ child, forced });
      }
    });
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`sshd exited (${code}) before listening: ${log}`)));
  });
}

describe.skipIf(!nr)(
  'a key forced to the agent in authorized_keys (command="…",restrict): dsg as the non-root client, the non-root login',
  () => {
    let base: string;
    let b: NonRootBackend;
    let sshd: Sshd | undefined;
    let forcedRw: string;
    let forcedRo: string;
    let port: number;
    let knownHosts: string;
    const boxes: Sandbox[] = [];
    /** a sandbox of the client user holding one of this test's keys and its known_hosts */
    const box = (key: 'rw' | 'ro'): Sandbox => {
      const sb = clientSandbox(nr!.ssh, nr!.client, { key: path.join(base, key), knownHosts });
      boxes.push(sb);
      return sb;
    };
    /** dsg options reaching the forced key's sshd; the agent command the client asks for does not exist: sshd must ignore it */
    const via = (): string[] => [
      '--port',
      String(port),
      '--ssh-user',
      nr!.server.user,
      '--agent',
      '/nonexistent/dsg-agent',
    ];
    const initArgs = (name: string): string[] => [
      'init',
      '--host',
      '127.0.0.1',
      '--repo-type',
      'posix',
      '--repo-path',
      b.root,
      ...via(),
      '--repo-name',
      name,
      '-q',
    ];
    const cloneArgs = (name: string, dest: string): string[] => [
      'clone',
      `127.0.0.1:${b.root}/${name}`,
      '--repo-type',
      'posix',
      ...via(),
      dest,
      '-q',
    ];
    const must = async (what: string, sb: Sandbox, cwd: string, ...args: string[]): Promise<RunResult> =>
      ok(await run(sb, cwd, args), what);
    const repoState = (name: string): unknown => ({
      snapshots: b.snapshots(name),
      leftovers: b.leftovers(name),
      locked: existsSync(b.lockFile(name)),
    });

    beforeAll(async () => {
      b = nonRootPosixBackend(nr!);
      base = mkdtempSync('/tmp/dsg-sec-forced-');
      chmodSync(base, 0o755);
      const keygen = (file: string, comment: string): void =>
        void execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', file], {
          stdio: 'ignore',
        });
      keygen(path.join(base, 'host'), 'dsg-forced-host');
      keygen(path.join(base, 'rw'), 'ana@laptop');
      keygen(path.join(base, 'ro'), 'ci-reader');
      const forced = (...extra: string[]): string => {
        const words = [
          process.execPath,
          BUNDLE,
          'serve',
          '--type',
          'posix',
          '--root',
          b.root,
          '--restrict-to-repository',
          'proj',
          ...extra,
        ];
        for (const w of words)
          if (!PLAIN.test(w)) throw new Error(`forced command word ${JSON.stringify(w)} is not plain`);
        return words.join(' ');
      };
      const pub = (k: string): string => readFileSync(path.join(base, `${k}.pub`), 'utf8').trim();
      // the server login's authorized_keys: exactly the README's two lines (sshd reads it as that login)
      const keysDir = path.join(base, 'authorized_keys');
      mkdirSync(keysDir, { mode: 0o755 });
      writeFileSync(
        path.join(keysDir, nr!.server.user),
        [
          `command="${(forcedRw = forced())}",restrict ${pub('rw')}`,
          `command="${(forcedRo = forced('--read-only'))}",restrict ${pub('ro')}`,
          '',
        ].join('\n'),
        { mode: 0o644 },
      );
      const config = path.join(base, 'sshd_config');
      const configure = (p: number): void =>
        writeFileSync(
          config,
          [
            `Port ${p}`,
            'ListenAddress 127.0.0.1',
            `HostKey ${path.join(base, 'host')}`,
            `PidFile ${path.join(base, 'sshd.pid')}`,
            `AuthorizedKeysFile ${keysDir}/%u`,
            'PermitRootLogin no',
            'PasswordAuthentication no',
            'KbdInteractiveAuthentication no',
            'UsePAM no',
            // the key files live under /tmp (world-writable): the modes checks would refuse them; the testenv sshd does the same
            'StrictModes no',
            // VERBOSE logs each session's forced command ("Starting session: forced-command (key-option) '…'"), which the tests check
            'LogLevel VERBOSE',
            `AllowUsers ${nr!.server.user}`,
            '',
          ].join('\n'),
        );
      // a free port can be taken before sshd binds it: a few tries
      for (let attempt = 1; !sshd; attempt++) {
        port = await freePort();
        configure(port);
        try {
          sshd = await startSshd(config);
        } catch (e) {
          if (attempt >= 3) throw e;
        }
      }
      knownHosts = path.join(base, 'known_hosts');
      writeFileSync(
        knownHosts,
        `[127.0.0.1]:${port} ${readFileSync(path.join(base, 'host.pub'), 'utf8').split(' ').slice(0, 2).join(' ')}\n`,
      );
      // another repository under the same root, made through the testenv sshd by an unrestricted key
      const free = clientSandbox(nr!.ssh, nr!.client);
      boxes.push(free);
      writeAs(nr!.client, free.dir, 'secret/input/s.csv', 'secret\n');
      await must(
        'seed secret',
        free,
        path.join(free.dir, 'secret'),
        'init',
        ...b.initArgs('secret'),
        '--repo-name',
        'secret',
        '-q',
      );
    }, HANG_GUARD);

    afterAll(async () => {
      if (sshd && sshd.child.exitCode === null) {
        const gone = new Promise((r) => sshd!.child.once('exit', r));
        sshd.child.kill('SIGTERM');
        await gone;
      }
      for (const sb of boxes) sb.remove();
      b?.destroy();
      if (base) rmSync(base, { recursive: true, force: true });
    });

    it(
      'the allowed repository works through the key: init, clone, sync both ways — with the forced command, not the one the client asked for',
      async () => {
        const sb = box('rw');
        const A = path.join(sb.dir, 'a');
        const B = path.join(sb.dir, 'b');
        writeAs(nr!.client, sb.dir, 'a/input/x.csv', 'id\n1\n');
        await must('init proj', sb, A, ...initArgs('proj'));
        await must('clone proj', sb, sb.dir, ...cloneArgs('proj', B));
        expect(readFileSync(path.join(B, 'input', 'x.csv'), 'utf8')).toBe('id\n1\n');
        writeAs(nr!.client, B, 'input/from-b.csv', 'id\n2\n');
        await must('sync B', sb, B, 'sync', '-m', 'from b', '-q');
        await must('sync A', sb, A, 'sync', '-m', 'a pulls', '-q');
        expect(readFileSync(path.join(A, 'input', 'from-b.csv'), 'utf8')).toBe('id\n2\n');
        expect(repoState('proj')).toEqual({ snapshots: ['s1', 's2'], leftovers: [], locked: false });
        expect(strangers(path.join(b.root, 'proj'), nr!.server.uid)).toEqual([]);
        expect(strangers(sb.dir, nr!.client.uid)).toEqual([]);
        // every session ran the key's line (4 commands: init, clone, 2 syncs; a command may open more than one session)
        expect(sshd!.forced.length).toBeGreaterThanOrEqual(4);
        expect(new Set(sshd!.forced)).toEqual(new Set([forcedRw]));
      },
      HANG_GUARD,
    );

    it(
      'another repository through the same key is refused with RESTRICTED naming the allowed one; nothing is written on either side',
      async () => {
        const sb = box('rw');
        const secretBefore = repoState('secret');
        const dest = path.join(sb.dir, 'stolen');
        const clone = await run(sb, sb.dir, ['--json', ...cloneArgs('secret', dest)]);
        expect(clone.code, clone.stderr).not.toBe(0);
        expect(errorDoc(clone).error.code).toBe('RESTRICTED');
        expect(errorDoc(clone).error.message).toMatch(/"proj"/);
        expect(existsSync(path.join(dest, 'input', 's.csv'))).toBe(false);

        const C = path.join(sb.dir, 'c');
        writeAs(nr!.client, sb.dir, 'c/input/y.csv', 'id\n3\n');
        const init = await run(sb, C, ['--json', ...initArgs('other')]);
        expect(init.code, init.stderr).not.toBe(0);
        expect(errorDoc(init).error.code).toBe('RESTRICTED');
        expect(existsSync(path.join(b.root, 'other'))).toBe(false);
        expect(repoState('secret')).toEqual(secretBefore);
      },
      HANG_GUARD,
    );

    it(
      'the --read-only key: clone, status and log work; a sync is refused with READ_ONLY and the repository does not change',
      async () => {
        const sb = box('ro');
        const seen = sshd!.forced.length;
        const R = path.join(sb.dir, 'r');
        await must('clone through the read-only key', sb, sb.dir, ...cloneArgs('proj', R));
        expect(readFileSync(path.join(R, 'input', 'from-b.csv'), 'utf8')).toBe('id\n2\n');
        const status = JSON.parse((await must('status', sb, R, '--json', 'status')).stdout) as { clean: boolean };
        expect(status.clean).toBe(true);
        const log = JSON.parse((await must('log', sb, R, '--json', 'log')).stdout) as {
          snapshots: { message: string }[];
        };
        expect(log.snapshots.map((s) => s.message)).toContain('from b');

        const before = repoState('proj');
        writeAs(nr!.client, R, 'input/from-reader.csv', 'id\n9\n');
        const sync = await run(sb, R, ['--json', 'sync', '-m', 'reader writes']);
        expect(sync.code, sync.stderr).not.toBe(0);
        expect(errorDoc(sync).error.code).toBe('READ_ONLY');
        expect(repoState('proj')).toEqual(before);
        expect(existsSync(path.join(b.liveTree('proj')!, 'input', 'from-reader.csv'))).toBe(false);
        expect(new Set(sshd!.forced.slice(seen))).toEqual(new Set([forcedRo]));
      },
      HANG_GUARD,
    );
  },
);
