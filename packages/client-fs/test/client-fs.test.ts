import { spawnSync } from 'node:child_process';
import { lstat, mkdir, readFile, readdir, symlink, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { newTransactionId, ValidationError } from '@dsg/contracts';
import { LocalClientFilesystem, pruneBackups, recoverClient } from '../src/index.js';
import { bytes, exists, hashOf, tempProject, testHasher, tree } from './helpers.js';

const ORIGINAL = {
  'input/a.txt': 'A1',
  'input/b.txt': 'B1',
  'input/gone.txt': 'G',
  'output/keep.txt': 'K',
  '.dsg/last-sync.json': '{"v":1}',
};

async function stageChanges(fs: LocalClientFilesystem, tx: ReturnType<typeof newTransactionId>): Promise<void> {
  await fs.begin(tx);
  await fs.stageFile(tx, 'input/a.txt', bytes('A2'), { hash: hashOf('A2'), mtime: '2025-06-01T10:11:12-07:00' });
  await fs.stageFile(tx, 'input/b.txt', bytes('B2'), { hash: hashOf('B2'), size: 2 });
  await fs.stageFile(tx, 'input/sub/new.txt', bytes('N'), { hash: hashOf('N') });
  await fs.stageLink(tx, 'output/link.txt', '../input/a.txt');
  await fs.stageDelete(tx, 'input/gone.txt');
  await fs.stageMeta(tx, 'last-sync.json', Buffer.from('{"v":2}'));
  await fs.stageMeta(tx, '.dsg/archive/s1-sync.json.lz4', Buffer.from('old'));
  await fs.setRemoteSnapshot(tx, 's2');
}

const APPLIED = {
  'input/a.txt': 'A2',
  'input/b.txt': 'B2',
  'input/sub/new.txt': 'N',
  'output/keep.txt': 'K',
  'output/link.txt': '-> ../input/a.txt',
};

afterEach(() => {
  delete process.env['DSG_FAULT'];
});

describe('LocalClientFilesystem commit', () => {
  it('applies every staged change, backs up what it replaced or deleted, and drops journal and staging', async () => {
    const root = await tempProject(ORIGINAL);
    const fs = new LocalClientFilesystem({ root, hasher: testHasher });
    const tx = newTransactionId();
    await stageChanges(fs, tx);
    expect(await exists(path.join(root, '.dsg/journal', `${tx}.json`))).toBe(true);
    expect(await tree(root)).toEqual(tree0(ORIGINAL)); // nothing visible before commit
    await fs.commit(tx);
    expect(await tree(root)).toEqual(APPLIED);
    expect(await readFile(path.join(root, '.dsg/last-sync.json'), 'utf8')).toBe('{"v":2}');
    expect(await readFile(path.join(root, '.dsg/archive/s1-sync.json.lz4'), 'utf8')).toBe('old');
    expect(await tree(path.join(root, '.dsg/backup', tx), [])).toEqual({
      'input/a.txt': 'A1',
      'input/b.txt': 'B1',
      'input/gone.txt': 'G',
    });
    expect(await readdir(path.join(root, '.dsg/journal'))).toEqual([]);
    expect(await exists(path.join(root, '.dsg/staging', tx))).toBe(false);
    const st = await lstat(path.join(root, 'input/a.txt'));
    expect(st.mtime.toISOString()).toBe('2025-06-01T17:11:12.000Z');
  });

  it('refuses a download whose hash or size does not match and leaves nothing staged', async () => {
    const root = await tempProject(ORIGINAL);
    const fs = new LocalClientFilesystem({ root, hasher: testHasher });
    const tx = newTransactionId();
    await fs.begin(tx);
    await expect(fs.stageFile(tx, 'input/a.txt', bytes('evil'), { hash: hashOf('A2') })).rejects.toMatchObject({
      code: 'HASH_MISMATCH',
    });
    await expect(fs.stageFile(tx, 'input/a.txt', bytes('A2'), { hash: hashOf('A2'), size: 3 })).rejects.toMatchObject({
      code: 'HASH_MISMATCH',
    });
    expect(await exists(path.join(root, '.dsg/staging', tx, 'data/input/a.txt'))).toBe(false);
    await fs.commit(tx);
    expect(await tree(root)).toEqual(tree0(ORIGINAL));
  });

  it('says whose bytes did not match: the repository (inconsistent, running again does not help) or a local file read while it changed', async () => {
    const root = await tempProject(ORIGINAL);
    const fs = new LocalClientFilesystem({ root, hasher: testHasher });
    const tx = newTransactionId();
    await fs.begin(tx);
    // a download: the bytes came from the repository
    const remote = await fs
      .stageFile(tx, 'input/a.txt', bytes('evil'), { hash: hashOf('A2') })
      .catch((e: unknown) => e);
    expect(remote).toMatchObject({
      code: 'HASH_MISMATCH',
      message: expect.stringMatching(
        /^hash mismatch for input\/a\.txt: expected [0-9a-f]+, received [0-9a-f]+: the repository's copy of input\/a\.txt does not match/,
      ),
    });
    expect((remote as ValidationError).recoveryHint).toMatch(
      /repository is inconsistent.*running again fails the same way.*dsg validate-snapshot/,
    );
    // a backup copy of a local file (readFile's own stream) whose bytes changed since the scan
    const local = await fs
      .stageFile(tx, 'input/a.txt~x~', fs.readFile('input/a.txt'), { hash: hashOf('not A1') })
      .catch((e: unknown) => e);
    expect(local).toMatchObject({
      code: 'HASH_MISMATCH',
      message: expect.stringMatching(/input\/a\.txt~x~ changed in this working copy while dsg was reading it/),
    });
    expect((local as ValidationError).recoveryHint).toMatch(/run the command again/);
    await fs.rollback(tx);
    expect(await tree(root)).toEqual(tree0(ORIGINAL));
  });

  it('refuses unsafe paths and escaping link targets', async () => {
    const root = await tempProject(ORIGINAL);
    await symlink('/tmp', path.join(root, 'escape'));
    const fs = new LocalClientFilesystem({ root, hasher: testHasher });
    const tx = newTransactionId();
    await fs.begin(tx);
    for (const p of ['../x', '/etc/passwd', 'a/../../x', '.dsg/last-sync.json', 'input//x', 'a\\b']) {
      await expect(fs.stageFile(tx, p, bytes('x'), { hash: hashOf('x') })).rejects.toBeInstanceOf(ValidationError);
      await expect(fs.stageDelete(tx, p)).rejects.toBeInstanceOf(ValidationError);
    }
    await expect(fs.stageMeta(tx, 'journal/x.json', Buffer.from('x'))).rejects.toBeInstanceOf(ValidationError);
    await expect(fs.stageMeta(tx, '../x', Buffer.from('x'))).rejects.toBeInstanceOf(ValidationError);
    await expect(fs.stageLink(tx, 'input/l', '/etc/passwd')).rejects.toBeInstanceOf(ValidationError);
    await expect(fs.stageLink(tx, 'input/l', '../../x')).rejects.toBeInstanceOf(ValidationError);
    await fs.stageLink(tx, 'input/l', '../output/keep.txt'); // from the link's directory: inside
    // a parent that is a symlink out of the project is caught at apply time
    await fs.stageFile(tx, 'escape/x', bytes('x'), { hash: hashOf('x') });
    await expect(fs.commit(tx)).rejects.toBeInstanceOf(ValidationError);
    expect(await exists('/tmp/x-should-not-exist')).toBe(false);
    const chunks: Buffer[] = [];
    await expect(async () => {
      for await (const c of fs.readFile('escape/hosts')) chunks.push(Buffer.from(c));
    }).rejects.toBeInstanceOf(ValidationError);
  });

  it('never writes into .git or .dsg at any depth or case, nor through a symlinked parent that points inside', async () => {
    const root = await tempProject({ ...ORIGINAL, 'input/sub/real.txt': 'R', '.git/config': 'honest' });
    await symlink('sub', path.join(root, 'input/inside-link')); // points inside: still never written through
    const fs = new LocalClientFilesystem({ root, hasher: testHasher });
    const tx = newTransactionId();
    await fs.begin(tx);
    for (const p of ['.git/config', 'input/.git/hooks/x', '.DSG/last-sync.json', 'input/.Git/config']) {
      await expect(fs.stageFile(tx, p, bytes('x'), { hash: hashOf('x') }), p).rejects.toThrow(/may not be inside/);
    }
    await expect(fs.stageLink(tx, 'input/g', '../.git')).rejects.toThrow(/hidden name/);
    await expect(fs.stageLink(tx, 'input/l2', 'l1/../x')).rejects.toThrow(/after a name/);
    await fs.stageFile(tx, 'input/inside-link/x.txt', bytes('x'), { hash: hashOf('x') });
    await expect(fs.commit(tx)).rejects.toThrow(/beyond a symbolic link/);
    expect(await exists(path.join(root, 'input/sub/x.txt'))).toBe(false);
    expect(await readFile(path.join(root, '.git/config'), 'utf8')).toBe('honest');
  });

  it('applies the project scope it is given: an entry outside the data dirs is never staged', async () => {
    const root = await tempProject(ORIGINAL);
    const fs = new LocalClientFilesystem({
      root,
      hasher: testHasher,
      canWrite: (e) => (e.path.startsWith('input/') ? null : 'outside the data directories'),
    });
    const tx = newTransactionId();
    await fs.begin(tx);
    await expect(fs.stageFile(tx, 'Makefile', bytes('x'), { hash: hashOf('x') })).rejects.toThrow(
      /outside the data directories/,
    );
    await fs.stageFile(tx, 'input/ok.txt', bytes('x'), { hash: hashOf('x') });
    await fs.rollback(tx);
  });

  it('reads local files for upload', async () => {
    const root = await tempProject(ORIGINAL);
    const fs = new LocalClientFilesystem({ root, hasher: testHasher });
    const chunks: Buffer[] = [];
    for await (const c of fs.readFile('input/a.txt')) chunks.push(Buffer.from(c));
    expect(Buffer.concat(chunks).toString()).toBe('A1');
  });

  it('never reads through a symlinked parent, even one pointing inside (the confinement of its writes)', async () => {
    const root = await tempProject(ORIGINAL);
    await symlink('.', path.join(root, 'input/here'));
    const fs = new LocalClientFilesystem({ root, hasher: testHasher });
    await expect(async () => {
      for await (const c of fs.readFile('input/here/a.txt')) void c;
    }).rejects.toThrow(/"input\/here" is a symlink/);
  });
});

describe('rollback', () => {
  it('before commit: staging removed, tree unchanged', async () => {
    const root = await tempProject(ORIGINAL);
    const fs = new LocalClientFilesystem({ root, hasher: testHasher });
    const tx = newTransactionId();
    await stageChanges(fs, tx);
    const r = await fs.rollback(tx);
    expect(r.leftovers).toEqual([]);
    expect(await tree(root)).toEqual(tree0(ORIGINAL));
    expect(await readFile(path.join(root, '.dsg/last-sync.json'), 'utf8')).toBe('{"v":1}');
    expect(await exists(path.join(root, '.dsg/staging', tx))).toBe(false);
    expect(await exists(path.join(root, '.dsg/backup', tx))).toBe(false);
    expect(await readdir(path.join(root, '.dsg/journal'))).toEqual([]);
  });

  for (const point of [
    'client.commit.after-journal',
    'client.commit.after-first-op',
    'client.commit.before-cleanup',
    'client.commit.before-journal-drop',
  ]) {
    it(`after a failure at ${point}: rollback restores the tree byte-identically`, async () => {
      const root = await tempProject(ORIGINAL);
      const before = await tree(root, []);
      const fs = new LocalClientFilesystem({ root, hasher: testHasher });
      const tx = newTransactionId();
      await stageChanges(fs, tx);
      process.env['DSG_FAULT'] = `${point}:throw`;
      await expect(fs.commit(tx)).rejects.toThrow(/injected fault/);
      delete process.env['DSG_FAULT'];
      const r = await fs.rollback(tx);
      expect(r.leftovers).toEqual([]);
      // the verified downloads stay parked for the next run, outside the tree
      expect(await tree(root, ['staging', 'backup'])).toEqual({
        ...without(before, ['.dsg/staging', '.dsg/backup', '.dsg/journal']),
        [`.dsg/parked/${hashOf('A2')}`]: 'A2',
        [`.dsg/parked/${hashOf('B2')}`]: 'B2',
        [`.dsg/parked/${hashOf('N')}`]: 'N',
      });
      expect(await tree(root)).toEqual(tree0(ORIGINAL));
    });

    it(`after a failure at ${point}: recovery with the remote snapshot present finishes the apply`, async () => {
      const root = await tempProject(ORIGINAL);
      const fs = new LocalClientFilesystem({ root, hasher: testHasher });
      const tx = newTransactionId();
      await stageChanges(fs, tx);
      process.env['DSG_FAULT'] = `${point}:throw`;
      await expect(fs.commit(tx)).rejects.toThrow(/injected fault/);
      delete process.env['DSG_FAULT'];
      const asked: string[] = [];
      const r = await recoverClient(root, (id) => (asked.push(id), Promise.resolve(true)));
      expect(asked).toEqual(['s2']);
      expect(r.transactions).toEqual([{ transactionId: tx, action: 'rolled-forward' }]);
      expect(await tree(root)).toEqual(APPLIED);
      expect(await readFile(path.join(root, '.dsg/last-sync.json'), 'utf8')).toBe('{"v":2}');
      expect(await tree(path.join(root, '.dsg/backup', tx), [])).toMatchObject({
        'input/a.txt': 'A1',
        'input/gone.txt': 'G',
      });
      // idempotent: a second recovery has nothing to do
      expect((await recoverClient(root, () => Promise.resolve(true))).transactions).toEqual([]);
    });

    it(`after a failure at ${point}: recovery without the remote snapshot rolls back`, async () => {
      const root = await tempProject(ORIGINAL);
      const fs = new LocalClientFilesystem({ root, hasher: testHasher });
      const tx = newTransactionId();
      await stageChanges(fs, tx);
      process.env['DSG_FAULT'] = `${point}:throw`;
      await expect(fs.commit(tx)).rejects.toThrow(/injected fault/);
      delete process.env['DSG_FAULT'];
      const r = await recoverClient(root, () => Promise.resolve(false));
      expect(r.transactions).toEqual([{ transactionId: tx, action: 'rolled-back' }]);
      expect(r.leftovers).toEqual([]);
      expect(await tree(root)).toEqual(tree0(ORIGINAL));
      expect(await readFile(path.join(root, '.dsg/last-sync.json'), 'utf8')).toBe('{"v":1}');
    });
  }

  it('a rollback interrupted half-way can be run again and still restores everything', async () => {
    const root = await tempProject(ORIGINAL);
    const fs = new LocalClientFilesystem({ root, hasher: testHasher });
    const tx = newTransactionId();
    await stageChanges(fs, tx);
    process.env['DSG_FAULT'] = 'client.commit.before-cleanup:throw';
    await expect(fs.commit(tx)).rejects.toThrow();
    process.env['DSG_FAULT'] = 'client.rollback.after-op:throw';
    const first = await fs.rollback(tx);
    expect(first.leftovers.length).toBeGreaterThan(0); // reported, not thrown
    delete process.env['DSG_FAULT'];
    const r = await recoverClient(root, () => Promise.resolve(false));
    expect(r.leftovers).toEqual([]);
    expect(await tree(root)).toEqual(tree0(ORIGINAL));
  });
});

describe('recoverClient', () => {
  it('finishes an apply whose process was killed (SIGKILL) between two renames', async () => {
    const root = await tempProject(ORIGINAL);
    const tx = newTransactionId();
    const child = fileURLToPath(new URL('./fixtures/commit-child.mjs', import.meta.url));
    const res = spawnSync(process.execPath, [child, root, tx], {
      env: { ...process.env, DSG_FAULT: 'client.commit.after-first-op' },
      encoding: 'utf8',
    });
    expect(res.signal).toBe('SIGKILL');
    expect(res.stdout).not.toContain('committed');
    // partially applied on disk right now
    expect(await exists(path.join(root, '.dsg/journal', `${tx}.json`))).toBe(true);
    const r = await recoverClient(root, (id) => Promise.resolve(id === 's2'));
    expect(r.transactions).toEqual([{ transactionId: tx, action: 'rolled-forward' }]);
    expect(await tree(root)).toEqual({
      'input/a.txt': 'A2',
      'input/b.txt': 'B2',
      'input/new.txt': 'N',
      'output/keep.txt': 'K',
    });
    expect(await readFile(path.join(root, '.dsg/last-sync.json'), 'utf8')).toBe('{"v":2}');
    expect(await tree(path.join(root, '.dsg/backup', tx), [])).toEqual({
      'input/a.txt': 'A1',
      'input/b.txt': 'B1',
      'input/gone.txt': 'G',
    });
  });

  it('removes staging dirs that never reached the journal', async () => {
    const root = await tempProject(ORIGINAL);
    const fs = new LocalClientFilesystem({ root, hasher: testHasher });
    const tx = newTransactionId();
    await fs.begin(tx);
    await fs.stageFile(tx, 'input/a.txt', bytes('A2'), { hash: hashOf('A2') });
    const r = await recoverClient(root, () => Promise.resolve(true));
    expect(r.transactions).toEqual([{ transactionId: tx, action: 'cleaned' }]);
    expect(await tree(root)).toEqual(tree0(ORIGINAL));
    expect(await readdir(path.join(root, '.dsg/staging'))).toEqual([]);
  });

  it('reports an invalid journal instead of acting on it', async () => {
    const root = await tempProject(ORIGINAL);
    const tx = newTransactionId();
    await mkdir(path.join(root, '.dsg/journal'), { recursive: true });
    await writeFile(
      path.join(root, '.dsg/journal', `${tx}.json`),
      JSON.stringify({
        journal_version: 1,
        transaction_id: tx,
        remote_snapshot: null,
        ops: [{ kind: 'delete', target: '../outside' }],
      }),
    );
    const r = await recoverClient(root, () => Promise.resolve(true));
    expect(r.transactions).toEqual([]);
    expect(r.leftovers).toHaveLength(1);
    expect(await tree(root)).toEqual(tree0(ORIGINAL));
  });
});

describe('pruneBackups', () => {
  it('removes backups older than the given age and keeps younger ones and those with a journal', async () => {
    const root = await tempProject(ORIGINAL);
    const old = newTransactionId(new Date('2026-01-01T00:00:00Z'));
    const young = newTransactionId(new Date('2026-11-20T00:00:00Z'));
    const journaled = newTransactionId(new Date('2026-01-02T00:00:00Z'));
    for (const tx of [old, young, journaled]) {
      await mkdir(path.join(root, '.dsg/backup', tx, 'input'), { recursive: true });
      await writeFile(path.join(root, '.dsg/backup', tx, 'input/a.txt'), 'x');
    }
    await mkdir(path.join(root, '.dsg/journal'), { recursive: true });
    await writeFile(path.join(root, '.dsg/journal', `${journaled}.json`), '{}');
    const other = path.join(root, '.dsg/backup', 'handmade');
    await mkdir(other);
    await utimes(other, new Date('2020-01-01'), new Date('2020-01-01'));
    const now = new Date('2026-11-25T00:00:00Z');
    const dry = await pruneBackups(root, 30 * 86_400_000, { now, dryRun: true });
    expect(dry.removed.map((p) => path.basename(p)).sort()).toEqual([old, 'handmade'].sort());
    expect(await exists(path.join(root, '.dsg/backup', old))).toBe(true);
    const r = await pruneBackups(root, 30 * 86_400_000, { now });
    expect(r.removed.map((p) => path.basename(p)).sort()).toEqual([old, 'handmade'].sort());
    expect((await readdir(path.join(root, '.dsg/backup'))).sort()).toEqual([journaled, young].sort());
  });
});

function tree0(files: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(files).filter(([p]) => !p.startsWith('.dsg/')));
}
function without(t: Record<string, string>, prefixes: string[]): Record<string, string> {
  return Object.fromEntries(Object.entries(t).filter(([p]) => !prefixes.some((x) => p.startsWith(x))));
}

describe('recoverClient passes the staged manifest hash', () => {
  it('so the caller can tell its own snapshot from another client’s with the same id', async () => {
    const root = await tempProject(ORIGINAL);
    const fs = new LocalClientFilesystem({ root, hasher: testHasher });
    const tx = newTransactionId();
    await fs.begin(tx);
    await fs.stageFile(tx, 'input/a.txt', bytes('A2'), { hash: hashOf('A2') });
    await fs.stageMeta(
      tx,
      'last-sync.json',
      Buffer.from(JSON.stringify({ entries: {}, metadata: { snapshot_id: 's2', snapshot_hash: 'abc' } })),
    );
    await fs.setRemoteSnapshot(tx, 's2'); // then the process "dies" before the remote commit
    const seen: [string, string | undefined][] = [];
    const r = await recoverClient(root, (id, h) => (seen.push([id, h]), Promise.resolve(h === 'def')));
    expect(seen).toEqual([['s2', 'abc']]);
    expect(r.transactions).toEqual([{ transactionId: tx, action: 'rolled-back' }]);
    expect(await tree(root)).toEqual(tree0(ORIGINAL));
  });
});

describe('type changes', () => {
  it('a deleted file makes room for a directory of the same name in one apply', async () => {
    const root = await tempProject({ 'input/x': 'file' });
    const fs = new LocalClientFilesystem({ root, hasher: testHasher });
    const tx = newTransactionId();
    await fs.begin(tx);
    await fs.stageFile(tx, 'input/x/y', bytes('Y'), { hash: hashOf('Y') });
    await fs.stageDelete(tx, 'input/x');
    await fs.commit(tx);
    expect(await tree(root)).toEqual({ 'input/x/y': 'Y' });
    expect(await tree(path.join(root, '.dsg/backup', tx), [])).toEqual({ 'input/x': 'file' });
  });

  it('and a rollback after that apply gives the file back', async () => {
    const root = await tempProject({ 'input/x': 'file' });
    const fs = new LocalClientFilesystem({ root, hasher: testHasher });
    const tx = newTransactionId();
    await fs.begin(tx);
    await fs.stageFile(tx, 'input/x/y', bytes('Y'), { hash: hashOf('Y') });
    await fs.stageDelete(tx, 'input/x');
    process.env['DSG_FAULT'] = 'client.commit.before-cleanup:throw';
    await expect(fs.commit(tx)).rejects.toThrow();
    delete process.env['DSG_FAULT'];
    const rb = await fs.rollback(tx);
    expect(rb.leftovers.map((x) => x.error)).toEqual([]);
    expect(await tree(root)).toEqual({ 'input/x': 'file' });
  });
});
