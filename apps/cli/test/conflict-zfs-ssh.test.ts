/**
 * The conflict workflow end to end over the real sshd to the real zfs-fuse
 * pool, two users' working copies: the conflict, `dsg diff` reading the
 * repository's side over SSH into memory, `--continue` with the message
 * given to the sync that stopped, and the summary naming the backups kept.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freshParent, requireSsh, requireZfs, type TestParent } from '@dsg/testenv';
import { diffSchema, logSchema, syncSchema } from '../src/output/json-schemas.js';
import { AGENT, dsg, listing, ok, sandbox, write } from './helpers.js';

const zfs = requireZfs();
const ssh = requireSsh();
const cleanup: (() => void)[] = [];
afterAll(() => {
  for (const c of cleanup) c();
});

describe.skipIf(!zfs || !ssh)('conflict workflow over ssh to zfs', () => {
  it('diff, --continue with the kept message, backups and the conflict copy named', () => {
    const parent: TestParent = freshParent(zfs!, 'cli-conflict');
    cleanup.push(() => parent.destroy());
    const userYaml = (id: string): string =>
      `user_id: ${id}\nuser_name: x\nssh:\n  key_path: ${ssh!.key}\n  known_hosts: ${ssh!.knownHosts}\n`;
    const ana = sandbox(userYaml('ana@example.org'));
    const bo = sandbox(userYaml('bo@example.org'));
    const work = mkdtempSync(path.join(os.tmpdir(), 'dsg-cli-conflict-zfs-'));
    cleanup.push(() => rmSync(work, { recursive: true, force: true }));
    const sshArgs = ['--port', String(ssh!.port), '--ssh-user', ssh!.user, '--agent', 'node', '--agent', AGENT];
    const A = path.join(work, 'A');
    write(path.join(A, 'input', 'a.txt'), 'a v1\n');
    write(path.join(A, 'input', 'c.txt'), 'c v1\n');
    ok(
      dsg(
        A,
        ana.env,
        'init',
        '--host',
        ssh!.host,
        '--repo-type',
        'zfs',
        '--pool',
        parent.dataset,
        '--repo-path',
        parent.mountpoint,
        '--repo-name',
        'cz',
        ...sshArgs,
      ),
    );
    ok(
      dsg(
        work,
        bo.env,
        'clone',
        `${ssh!.host}:${parent.mountpoint}/cz`,
        'B',
        '--repo-type',
        'zfs',
        '--pool',
        parent.dataset,
        ...sshArgs,
      ),
    );
    const B = path.join(work, 'B');
    for (const f of ['a', 'c']) write(path.join(A, 'input', `${f}.txt`), `${f} v1\nfrom ana\n`);
    ok(dsg(A, ana.env, 'sync'));
    for (const f of ['a', 'c']) write(path.join(B, 'input', `${f}.txt`), `${f} v1 by bo\n`);
    expect(dsg(B, bo.env, 'sync', '-m', 'bo merges ana').code).toBe(3);

    const before = listing(B);
    const d = diffSchema.parse(JSON.parse(ok(dsg(B, bo.env, '--json', 'diff', 'input/a.txt')).stdout));
    expect(d).toMatchObject({ changedHere: true, changedInRepository: true, repository: { snapshotId: 's2' } });
    expect(d.patches.find((p) => p.to === 'repository')?.patch).toContain('+from ana\n');
    expect(d.patches.find((p) => p.to === 'local')?.patch).toContain('+a v1 by bo\n');
    expect(listing(B)).toEqual(before);

    // bo keeps his a.txt (uploaded: a new snapshot) and takes ana's c.txt (his kept beside it)
    const file = path.join(B, 'conflicts.txt');
    const text = readFileSync(file, 'utf8');
    writeFileSync(
      file,
      text
        .replace(/(path: input\/a\.txt\n(?:.*\n)*?resolution:) *$/m, '$1 L')
        .replace(/(path: input\/c\.txt\n(?:.*\n)*?resolution:) *$/m, '$1 R'),
    );
    const s = syncSchema.parse(JSON.parse(ok(dsg(B, bo.env, '--json', 'sync', '--continue')).stdout));
    expect(s).toMatchObject({ committed: true, snapshotId: 's3', message: 'bo merges ana' });
    expect(s.backups?.conflictCopies).toEqual([expect.stringMatching(/^input\/c\.txt~\d{8}T\d{6}[+-]\d{4}~$/)]);
    expect(s.backups?.kept.map((k) => k.original)).toEqual(['input/c.txt']);
    expect(readFileSync(path.join(B, 'input', 'c.txt'), 'utf8')).toBe('c v1\nfrom ana\n');
    const log = logSchema.parse(JSON.parse(ok(dsg(A, ana.env, '--json', 'log', '-n', '1')).stdout));
    expect(log.snapshots[0]).toMatchObject({ snapshotId: 's3', message: 'bo merges ana', user: 'bo@example.org' });
  });
});
