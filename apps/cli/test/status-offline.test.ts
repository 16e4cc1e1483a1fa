/**
 * `dsg status --offline`, through the built binary: the working tree against
 * the last sync only. It opens no connection of any kind, so it answers with
 * the repository unreachable (a host that does not exist, a local repository
 * that is gone), and says in text and JSON that the repository was not asked.
 */
import { mkdtempSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { errorDocSchema, statusSchema } from '../src/output/json-schemas.js';
import { dsg, listing, ok, sandbox, write } from './helpers.js';

const LOCAL_CONFIG = path.join('.dsg', 'config.local.yml');

/** A working copy synced once (s1) with a posix repository on this machine. */
function syncedCopy(): { sb: ReturnType<typeof sandbox>; dir: string; repos: string } {
  const sb = sandbox();
  const dir = path.join(sb.dir, 'p');
  const repos = mkdtempSync(path.join(os.tmpdir(), 'dsg-cli-offline-'));
  write(path.join(dir, 'input', 'a.csv'), 'a\n');
  write(path.join(dir, 'input', 'b.csv'), 'b\n');
  write(path.join(dir, 'output', 'r.txt'), 'r\n');
  ok(dsg(dir, sb.env, 'init', '--host', 'localhost', '--repo-type', 'posix', '--repo-path', repos, '--repo-name', 'p'));
  return { sb, dir, repos };
}

/** Edits since the last sync: one changed, one added, one deleted. */
function edit(dir: string): void {
  writeFileSync(path.join(dir, 'input', 'a.csv'), 'a changed\n');
  write(path.join(dir, 'input', 'new.csv'), 'n\n');
  unlinkSync(path.join(dir, 'output', 'r.txt'));
}

describe('dsg status --offline', () => {
  it('a host that does not exist: local changes since the last sync, said as such; the repository not asked', () => {
    const { sb, dir, repos } = syncedCopy();
    try {
      const file = path.join(dir, LOCAL_CONFIG);
      const conf = readFileSync(file, 'utf8');
      expect(conf).toContain('localhost');
      writeFileSync(file, conf.replace('localhost', 'no-such-host.invalid'));
      edit(dir);
      const r = ok(dsg(dir, sb.env, 'status', '--offline'));
      const lines = r.stdout.split('\n');
      expect(lines[0]).toMatch(
        /^Compared with the last sync \(s1, \d{4}-\d\d-\d\dT[^)]*\); the repository was not asked \(--offline\)$/,
      );
      const section = (title: string): string[] => {
        const i = lines.indexOf(`${title}:`);
        if (i < 0) return [];
        const out: string[] = [];
        for (const l of lines.slice(i + 1)) {
          if (!l.startsWith('  ')) break;
          out.push(l.trim());
        }
        return out;
      };
      expect(section('Modified here since the last sync')).toEqual(['input/a.csv']);
      expect(section('Added here since the last sync')).toEqual(['input/new.csv']);
      expect(section('Deleted here since the last sync')).toEqual(['output/r.txt']);
      expect(r.stdout).not.toMatch(/To upload|To delete remotely|To download/);
      expect(r.stderr).not.toMatch(/no-such-host/);
    } finally {
      rmSync(repos, { recursive: true, force: true });
    }
  });

  it('--json: the status document with offline: true; a local repository that is gone is not opened either', () => {
    const { sb, dir, repos } = syncedCopy();
    try {
      const online = statusSchema.parse(JSON.parse(ok(dsg(dir, sb.env, '--json', 'status')).stdout));
      expect(online.offline).toBe(false);
      expect(online.clean).toBe(true);
      const clean = statusSchema.parse(JSON.parse(ok(dsg(dir, sb.env, '--json', 'status', '--offline')).stdout));
      expect(clean).toMatchObject({ offline: true, clean: true, remoteSnapshot: 's1', upload: [], deleteRemote: [] });
      // the repository is gone: asked, the in-process agent finds no snapshot; offline, nothing is asked
      renameSync(path.join(repos, 'p'), path.join(repos, 'moved'));
      const asked = statusSchema.parse(JSON.parse(ok(dsg(dir, sb.env, '--json', 'status')).stdout));
      expect(asked.remoteSnapshot).toBeNull();
      edit(dir);
      const doc = statusSchema.parse(JSON.parse(ok(dsg(dir, sb.env, '--json', 'status', '--offline')).stdout));
      expect(doc).toMatchObject({
        command: 'status',
        offline: true,
        remoteSnapshot: 's1',
        upload: ['input/a.csv', 'input/new.csv'],
        deleteRemote: ['output/r.txt'],
        download: [],
        deleteLocal: [],
        conflicts: [],
        clean: false,
        configChange: null,
      });
      expect(doc.paths.map((p) => [p.path, p.state])).toEqual([
        ['input/a.csv', 'sLCR__C_eq_R_ne_L'],
        ['input/new.csv', 'sLxCxR__only_L'],
        ['output/r.txt', 'sxLCR__C_eq_R'],
      ]);
      expect(doc.repository).toContain(path.join(repos, 'p'));
    } finally {
      rmSync(repos, { recursive: true, force: true });
    }
  });

  it('an interrupted sync only the repository can settle: refused with a hint, the journal kept', () => {
    const { sb, dir, repos } = syncedCopy();
    try {
      // a sync killed between its remote commit and its local apply leaves a journal naming the snapshot
      const tx = '20261201T120000000Z-0123abcd';
      const journal = path.join(dir, '.dsg', 'journal', `${tx}.json`);
      write(journal, JSON.stringify({ journal_version: 1, transaction_id: tx, remote_snapshot: 's2', ops: [] }));
      const r = dsg(dir, sb.env, 'status', '--offline');
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/interrupted sync/);
      expect(r.stderr).toMatch(/hint: .*without --offline/);
      expect(readFileSync(journal, 'utf8')).toContain(tx);
    } finally {
      rmSync(repos, { recursive: true, force: true });
    }
  });

  it('a working copy that never synced: a clear error with a hint, exit 1, nothing written', () => {
    const { sb, dir, repos } = syncedCopy();
    try {
      const fresh = path.join(sb.dir, 'fresh');
      write(path.join(fresh, '.dsgconfig.yml'), readFileSync(path.join(dir, '.dsgconfig.yml'), 'utf8'));
      write(path.join(fresh, LOCAL_CONFIG), readFileSync(path.join(dir, LOCAL_CONFIG), 'utf8'));
      write(path.join(fresh, 'input', 'a.csv'), 'a\n');
      const before = listing(fresh);
      const r = dsg(fresh, sb.env, '--json', 'status', '--offline');
      expect(r.code).toBe(1);
      const err = errorDocSchema.parse(JSON.parse(r.stdout || r.stderr));
      expect(err.error.message).toMatch(/never synced/);
      expect(err.error.recoveryHint).toMatch(/without --offline/);
      const text = dsg(fresh, sb.env, 'status', '--offline');
      expect(text.code).toBe(1);
      expect(text.stderr).toMatch(/never synced/);
      expect(text.stderr).toMatch(/hint: .*without --offline/);
      expect(listing(fresh)).toEqual(before);
    } finally {
      rmSync(repos, { recursive: true, force: true });
    }
  });
});
