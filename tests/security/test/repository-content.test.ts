// A repository's content must not write anywhere in a client's project but
// its data directories (security issue, critical 1). The attacker is a
// collaborator (or anyone who can write the repository): here the live
// manifest is forged and resealed on the server, exactly what a modified
// client committing a snapshot could produce. Through the BUILT dsg, against
// a posix repository in-process, a ZFS repository over the real sshd (both
// as root), and a posix repository of the non-root server login over the real
// sshd with dsg run as the non-root client user.
import { existsSync, lstatSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { requireSsh, requireZfs } from '@dsg/testenv';
import {
  fileHash,
  makeScene,
  ok,
  posixLocalBackend,
  readManifest,
  reseal,
  write,
  writeManifest,
  zfsSshBackend,
  type Backend,
  type ManifestJson,
  type RunResult,
  type Scene,
} from '@dsg/reliability';
import {
  isNonRoot,
  makeNonRootScene,
  nonRootPosixBackend,
  requireNonRoot,
  run as runIn,
  settleRepository,
  strangers,
  writeAs,
} from '../src/non-root.js';

const zfs = requireZfs();
const ssh = requireSsh();
const nonRoot = requireNonRoot();
const backends: Backend[] = [];
const scenes: Scene[] = [];
afterAll(() => {
  for (const s of scenes) s.sb.remove();
  for (const b of backends) b.destroy();
});

const EVIL_GIT_CONFIG = '[core]\n\tfsmonitor = "touch /tmp/dsg-security-pwned"\n';
const HONEST_GIT_CONFIG = '[core]\n\trepositoryformatversion = 0\n';

/** Put a file into the repository's live tree and list it in the manifest with its real hash. */
function plantFile(s: Scene, m: ManifestJson, rel: string, content: string): void {
  write(path.join(s.live, rel), content);
  m.entries[rel] = {
    ...m.entries['input/x.csv'],
    path: rel,
    type: 'file',
    filesize: Buffer.byteLength(content),
    hash: fileHash(content),
  };
}

function plantLink(s: Scene, m: ManifestJson, rel: string, target: string): void {
  mkdirSync(path.dirname(path.join(s.live, rel)), { recursive: true });
  symlinkSync(target, path.join(s.live, rel));
  const { hash: _h, filesize: _f, mtime: _m, ...rest } = m.entries['input/x.csv'] as Record<string, unknown>;
  m.entries[rel] = { ...rest, path: rel, type: 'link', reference: target };
}

/** The built dsg in the scene's sandbox (as the non-root client user when the scene has one). */
const run = (s: Scene, cwd: string, args: string[]): Promise<RunResult> => runIn(s.sb, cwd, args);
const scene = (b: Backend, name: string): Promise<Scene> =>
  isNonRoot(b) ? makeNonRootScene(b, name) : makeScene(b, name);
/** A file the user puts into the working copy (owned by the client user when there is one). */
const userWrites = (s: Scene, rel: string, content: string): void =>
  writeAs(isNonRoot(s.b) ? s.b.nonRoot.client : undefined, s.A, rel, content);
/** The forged manifest goes live; a non-root repository is given back to its login, as if it had written it. */
function forge(s: Scene, m: ManifestJson): void {
  writeManifest(s, reseal(m));
  settleRepository(s.b);
}
/** On the non-root setup: nothing in the client's sandbox belongs to anyone but the client, nothing in the repository to anyone but the server login. */
function ownersStayed(s: Scene): void {
  if (!isNonRoot(s.b)) return;
  expect(strangers(s.sb.dir, s.b.nonRoot.client.uid), `not ${s.b.nonRoot.client.user}'s`).toEqual([]);
  expect(strangers(path.join(s.b.root, s.name), s.b.nonRoot.server.uid), `not ${s.b.nonRoot.server.user}'s`).toEqual(
    [],
  );
}

interface SyncDoc {
  snapshotId: string;
  heldBack: { path: string; reason: string }[];
}

function backendsToTest(): Backend[] {
  const list: Backend[] = [posixLocalBackend()];
  if (zfs && ssh) list.push(zfsSshBackend(zfs, ssh));
  if (nonRoot) list.push(nonRootPosixBackend(nonRoot));
  backends.push(...list);
  return list;
}

describe('snapfetch verifies what it writes (posix/local)', () => {
  it('bytes of an old snapshot changed on the server are refused and nothing is written', async () => {
    const b = posixLocalBackend();
    backends.push(b);
    const s = await scene(b, 'sec-snapfetch');
    scenes.push(s);
    const s1File = path.join(b.root, s.name, 'snapshots', 's1', 'input', 'x.csv');
    expect(readFileSync(s1File, 'utf8')).toBe('id,name\n1,Ana\n');
    const good = ok(
      await run(s, s.A, ['--json', 'snapfetch', 'input/x.csv', '--snapshot', 's1', '-o', 'good.csv']),
      'snapfetch',
    );
    expect((JSON.parse(good.stdout) as { hash: string }).hash).toBe(fileHash('id,name\n1,Ana\n'));
    writeFileSync(s1File, 'id,name\n1,Eve\n'); // same size, other bytes
    const bad = await run(s, s.A, ['--json', 'snapfetch', 'input/x.csv', '--snapshot', 's1', '-o', 'bad.csv']);
    expect(bad.code, bad.stderr).toBe(1);
    expect((JSON.parse(bad.stdout) as { error: { code: string } }).error.code).toBe('HASH_MISMATCH');
    expect(bad.stderr).toMatch(/does not match its manifest[^\n]*nothing was written/);
    expect(existsSync(path.join(s.A, 'bad.csv'))).toBe(false);
    expect(readFileSync(path.join(s.A, 'good.csv'), 'utf8')).toBe('id,name\n1,Ana\n');
  });
});

describe.each(backendsToTest().map((b) => [b.label, b] as const))(
  'repository content stays in the data dirs (%s)',
  (_label, b) => {
    it('entries at the project root, in .git/ and in .dsg/ are held back: never written, never deleted, carried on', async () => {
      const s = await scene(b, `sec-root-${b.type}`);
      scenes.push(s);
      userWrites(s, '.git/config', HONEST_GIT_CONFIG);
      const m = readManifest(s);
      plantFile(s, m, '.git/config', EVIL_GIT_CONFIG);
      plantFile(s, m, 'Makefile', 'all:\n\ttouch /tmp/dsg-security-pwned\n');
      plantFile(s, m, 'input/.GIT/hooks/post-checkout', '#!/bin/sh\n');
      plantFile(s, m, '.DSG/last-sync.json', '{}');
      forge(s, m);

      const sync = ok(await run(s, s.A, ['--json', 'sync', '-m', 'after the forgery']), 'sync');
      const doc = JSON.parse(sync.stdout) as SyncDoc;
      expect(doc.heldBack.map((h) => h.path)).toEqual([
        '.DSG/last-sync.json',
        '.git/config',
        'Makefile',
        'input/.GIT/hooks/post-checkout',
      ]);
      expect(readFileSync(path.join(s.A, '.git', 'config'), 'utf8')).toBe(HONEST_GIT_CONFIG);
      expect(existsSync(path.join(s.A, 'Makefile'))).toBe(false);
      expect(existsSync(path.join(s.A, 'input', '.GIT'))).toBe(false);
      expect(existsSync(path.join(s.A, '.DSG'))).toBe(false);
      // the honest work went through, and the repository still has the planted entries (nothing deleted because of them)
      expect(readFileSync(path.join(s.A, 'input', 'from-b.csv'), 'utf8')).toBe('id\n42\n');
      const head = readManifest(s);
      expect(head.metadata['snapshot_id']).toBe(doc.snapshotId);
      expect(Object.keys(head.entries)).toEqual(
        expect.arrayContaining(['.git/config', 'Makefile', 'input/new-in-a.csv']),
      );

      // a clone writes none of them either, and says so
      const dest = path.join(s.sb.dir, 'clone-root');
      const clone = ok(await run(s, s.sb.dir, ['--json', 'clone', ...b.cloneArgs(s.name), dest]), 'clone');
      expect((JSON.parse(clone.stdout) as SyncDoc).heldBack.length).toBe(4);
      expect(existsSync(path.join(dest, '.git'))).toBe(false);
      expect(existsSync(path.join(dest, 'Makefile'))).toBe(false);
      expect(readFileSync(path.join(dest, 'input', 'x.csv'), 'utf8')).toBe('id,name\n1,Ana\n');
      // and the next status of both is clean apart from the held-back list
      for (const wc of [s.A, dest]) {
        const st = JSON.parse(ok(await run(s, wc, ['--json', 'status']), 'status').stdout) as {
          clean: boolean;
          heldBack: unknown[];
        };
        expect(st.clean).toBe(true);
        expect(st.heldBack.length).toBe(4);
      }
      ownersStayed(s);
    });

    it('a link into .git, and a file beneath a link, are never written through', async () => {
      const s = await scene(b, `sec-link-${b.type}`);
      scenes.push(s);
      userWrites(s, '.git/config', HONEST_GIT_CONFIG);
      const m = readManifest(s);
      plantLink(s, m, 'input/g', '../.git'); // route 1: a link to .git, then files through it
      plantLink(s, m, 'input/h', 'sub'); // route 2: an inside link, and a file beneath it in the same snapshot
      plantLink(s, m, 'input/up', '../output'); // a link out of its data dir into another one: allowed
      plantLink(s, m, 'input/l1', 'sub'); // the agent-escape chain: `..` after a name
      plantLink(s, m, 'input/l2', 'l1/../x');
      m.entries['input/h/config'] = {
        ...m.entries['input/x.csv'],
        path: 'input/h/config',
        hash: fileHash(EVIL_GIT_CONFIG),
        filesize: EVIL_GIT_CONFIG.length,
      };
      forge(s, m);

      const doc = JSON.parse(ok(await run(s, s.A, ['--json', 'sync', '-m', 'links']), 'sync').stdout) as SyncDoc;
      expect(Object.fromEntries(doc.heldBack.map((h) => [h.path, h.reason]))).toEqual({
        'input/g': expect.stringMatching(/hidden name ".git"/) as unknown,
        'input/h/config': expect.stringMatching(/beneath the symbolic link "input\/h"/) as unknown,
        'input/l2': expect.stringMatching(/"\.\." after a name/) as unknown,
      });
      expect(existsSync(path.join(s.A, 'input', 'g'))).toBe(false);
      expect(lstatSync(path.join(s.A, 'input', 'h')).isSymbolicLink()).toBe(true);
      expect(existsSync(path.join(s.A, 'input', 'sub'))).toBe(false); // nothing was written beneath input/h
      expect(lstatSync(path.join(s.A, 'input', 'up')).isSymbolicLink()).toBe(true);
      expect(readFileSync(path.join(s.A, '.git', 'config'), 'utf8')).toBe(HONEST_GIT_CONFIG);

      // the next snapshot plants the file through the now-existing link: still refused
      const m2 = readManifest(s);
      m2.entries['input/g/config'] = {
        ...m2.entries['input/x.csv'],
        path: 'input/g/config',
        hash: fileHash(EVIL_GIT_CONFIG),
        filesize: EVIL_GIT_CONFIG.length,
      };
      forge(s, m2);
      const doc2 = JSON.parse(
        ok(await run(s, s.A, ['--json', 'sync', '-m', 'through the link']), 'sync 2').stdout,
      ) as SyncDoc;
      expect(doc2.heldBack.map((h) => h.path)).toContain('input/g/config');
      expect(readFileSync(path.join(s.A, '.git', 'config'), 'utf8')).toBe(HONEST_GIT_CONFIG);
      ownersStayed(s);
    });

    it('names that differ only by case are held back, not merged into one file', async () => {
      const s = await scene(b, `sec-case-${b.type}`);
      scenes.push(s);
      const m = readManifest(s);
      plantFile(s, m, 'input/Data.csv', 'upper\n');
      plantFile(s, m, 'input/data.csv', 'lower\n');
      forge(s, m);
      const doc = JSON.parse(ok(await run(s, s.A, ['--json', 'sync', '-m', 'case']), 'sync').stdout) as SyncDoc;
      expect(doc.heldBack.map((h) => h.path)).toEqual(['input/Data.csv', 'input/data.csv']);
      expect(existsSync(path.join(s.A, 'input', 'Data.csv'))).toBe(false);
      expect(existsSync(path.join(s.A, 'input', 'data.csv'))).toBe(false);
      // local case twins are refused before upload (both: neither is "the" file on a case-insensitive client)
      userWrites(s, 'input/X.csv', 'twin\n');
      const st = JSON.parse(ok(await run(s, s.A, ['--json', 'status']), 'status').stdout) as {
        invalidNames: { path: string; reason: string }[];
      };
      expect(st.invalidNames.map((i) => i.path)).toEqual(['input/X.csv', 'input/x.csv']);
      expect(st.invalidNames[0]!.reason).toMatch(/only by case/);
      const refused = await run(s, s.A, ['--json', 'sync', '-m', 'twins']);
      expect(refused.code).not.toBe(0);
      expect(readManifest(s).entries['input/X.csv']).toBeUndefined();
      ownersStayed(s);
    });
  },
);
