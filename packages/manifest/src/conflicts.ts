import { safeText, ValidationError } from '@dsg/contracts';
import type { PathPlan } from './classify.js';
import type { ManifestEntry } from './model.js';
import { validateName } from './names.js';

/*
 * conflicts.txt (the original's format, written by `dsg sync`, read by
 * `dsg sync --continue`): a commented header, then one
 * block per conflicting path:
 *
 *   path: input/a.csv
 *   state: sLCR__all_ne
 *     L: file size=19 mtime=2025-06-01T10:11:12-07:00 user=ana@example.org hash=1d812414f9aee671
 *     C: absent
 *     R: link -> ../input/b.csv user=bo@example.org
 *   resolution:
 *
 * The user writes L, C or R after `resolution:`. Paths cannot hold line
 * breaks (control characters are refused names), so one line per field is safe.
 */

const HEADER = [
  '# dsg conflicts: for each path below, write after "resolution:" one of',
  '#   L  keep the local version',
  '#   R  take the remote version',
  '#   C  restore the last synced version (absent = delete)',
  '# then run `dsg sync --continue`. Lines starting with # are ignored.',
];

/**
 * One side, on one line. User ids and link targets came from a repository:
 * their control characters are escaped, so `cat conflicts.txt` runs no
 * terminal escape and a line break cannot forge a `resolution:` line.
 */
function describe(e: ManifestEntry | undefined): string {
  if (!e) return 'absent';
  if (e.type === 'link') return `link -> ${safeText(e.reference)} user=${safeText(e.user)}`;
  return `file size=${e.filesize} mtime=${safeText(e.mtime)} user=${safeText(e.user)} hash=${safeText(e.hash || '(none)')}`;
}

/** `prefilled`: answers already given for some paths (a `sync --continue` that met new conflicts keeps them). */
export function formatConflictFile(conflicts: PathPlan[], prefilled?: ReadonlyMap<string, 'L' | 'C' | 'R'>): string {
  const lines = [...HEADER];
  for (const p of conflicts) {
    lines.push('', `path: ${p.path}`, `state: ${p.state}`);
    lines.push(`  L: ${describe(p.local)}`, `  C: ${describe(p.cache)}`, `  R: ${describe(p.remote)}`);
    lines.push(`resolution: ${prefilled?.get(p.path) ?? ''}`);
  }
  return lines.join('\n') + '\n';
}

/** Read a filled-in conflict file: path → chosen side. Any bad or unresolved line → ValidationError naming it. */
export function parseConflictFile(text: string, source?: string): Map<string, 'L' | 'C' | 'R'> {
  const file = source ?? 'conflicts.txt';
  const out = new Map<string, 'L' | 'C' | 'R'>();
  let current: { path: string; line: number } | null = null;
  const fail = (line: number, why: string, field?: string): never => {
    throw new ValidationError(
      `${file}:${line}: ${why}`,
      { file, line, ...(field ? { field } : {}) },
      {
        recoveryHint: 'Write L, C or R after each "resolution:" line of conflicts.txt, then run `dsg sync --continue`.',
      },
    );
  };
  const lines = text.split(/\r?\n/);
  for (const [i, raw] of lines.entries()) {
    const n = i + 1;
    const line = raw.trimEnd();
    if (line.trim() === '' || line.trimStart().startsWith('#')) continue;
    if (line.startsWith('path: ')) {
      if (current) fail(current.line, `no resolution line for ${JSON.stringify(current.path)}`, current.path);
      const p = line.slice('path: '.length);
      const why = validateName(p);
      if (why) fail(n, `invalid path ${JSON.stringify(p)}: ${why}`, p);
      if (out.has(p)) fail(n, `path ${JSON.stringify(p)} appears twice`, p);
      current = { path: p, line: n };
      continue;
    }
    if (/^resolution:/.test(line)) {
      if (!current) fail(n, 'resolution line without a preceding path line');
      const cur = current as { path: string; line: number };
      const v = line.slice('resolution:'.length).trim().toUpperCase();
      if (v === '') fail(n, `unresolved: ${JSON.stringify(cur.path)} has no resolution`, cur.path);
      if (v !== 'L' && v !== 'C' && v !== 'R')
        fail(n, `resolution must be L, C or R, not ${JSON.stringify(v)}`, cur.path);
      out.set(cur.path, v as 'L' | 'C' | 'R');
      current = null;
      continue;
    }
    if (current && (line.startsWith('state: ') || /^\s+[LCR]: /.test(line))) continue;
    fail(n, `unexpected line ${JSON.stringify(line.length > 80 ? line.slice(0, 80) + '…' : line)}`);
  }
  if (current) fail(current.line, `no resolution line for ${JSON.stringify(current.path)}`, current.path);
  return out;
}

/**
 * The name a losing local file is backed up under during `sync --continue`:
 * the original's form `<name>~YYYYMMDDTHHMMSS-ZZZZ~` (HRDAG/dsg
 * `core/scanner.py`), so its scanner ignores our backups as ours ignores its.
 * Its ignore pattern only matches a `-` offset: on a machine west of UTC the
 * stamp is local time with its offset (as the original writes it); elsewhere
 * it is UTC written `-0000` (RFC 3339's "UTC, local offset unknown"), so the
 * original never mistakes a backup for data and syncs it.
 */
export function conflictBackupName(relPath: string, at: Date): string {
  const offsetMin = -at.getTimezoneOffset(); // minutes east of UTC
  const local = offsetMin < 0;
  const t = local ? new Date(at.getTime() + offsetMin * 60_000) : at;
  const stamp = t.toISOString().slice(0, 19).replace(/[-:]/g, '');
  const off = local
    ? `-${String(Math.floor(-offsetMin / 60)).padStart(2, '0')}${String(-offsetMin % 60).padStart(2, '0')}`
    : '-0000';
  return `${relPath}~${stamp}${off}~`;
}

/** Either tool's conflict backup: the original's `~YYYYMMDDTHHMMSS±ZZZZ~` and the earlier `~YYYYMMDDTHHMMSS~` of this one. */
export function isConflictBackup(name: string): boolean {
  return /~\d{8}T\d{6}([+-]\d{4})?~$/.test(name);
}
