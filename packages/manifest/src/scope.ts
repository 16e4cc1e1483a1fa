import { isHidden, linkTargetProblem, ValidationError } from '@dsg/contracts';
import { CONFIG_FILE } from './config-file.js';
import type { ManifestEntry } from './model.js';
import { validateComponent } from './names.js';

/**
 * Which paths belong to this client's project: THE scope rule, used by the
 * scanner (what is read) and the sync engine (what of the repository may be
 * written here). A repository entry outside it is held back: never
 * downloaded, never deleted, carried into the next snapshot untouched.
 */
export interface Scope {
  /** the data-directory names */
  readonly dataDirs: readonly string[];
  /** the data directory that holds `relPath` (`tasks/a/input`), '' for the config file, null when `relPath` is out of scope */
  dataDirOf(relPath: string): string | null;
  /** whether directory `dir` is a data directory or inside one (the scanner validates names from there down) */
  inDataTree(dir: string): boolean;
  /**
   * Why `entry` may not be written into this working copy (outside the data
   * directories, a hidden component such as `.git`/`.dsg` in any case, a
   * link that fails the write rule or points out of the data), or null.
   */
  problem(entry: Pick<ManifestEntry, 'path' | 'type'> & { reference?: string }): string | null;
}

/** The hidden-name rule: a name starting with `.` is never entered by the scanner and never data. */
// the hidden-name rule is contracts' (the link rule there needs it too)
export { isHidden };

/**
 * Why `dataDir` cannot be a data directory, or null: one plain, visible name,
 * matched at any depth (the config validator and the scope share it).
 */
export function dataDirProblem(dataDir: string): string | null {
  if (dataDir === '') return 'is empty';
  if (dataDir.includes('/') || dataDir.includes('\\'))
    return 'contains "/" (a data dir is one name, matched at any depth)';
  if (dataDir === '.' || dataDir === '..') return `is "${dataDir}"`;
  if (isHidden(dataDir))
    return `is a hidden name (${dataDir === '.dsg' || dataDir === '.git' ? `${dataDir} is never data` : 'hidden directories are never data'})`;
  if (/\p{C}/u.test(dataDir)) return 'contains a control character';
  const why = validateComponent(dataDir);
  return why ? `is refused: ${why}` : null;
}

/**
 * The scope of `dataDirs`, as the original tool scans (HRDAG/dsg
 * `core/scanner.py`): a path belongs to the project when ANY of its
 * directory components is a data-directory name (`input`, and
 * `tasks/clean/input/…` in the task layout), and no component is hidden (a
 * name starting with `.`: `.git`, `.dsg`, `.DSG`, `input/.gitkeep`).
 * `.dsgconfig.yml` is the one hidden name a client may write: never a manifest
 * entry (the original never scans it), it travels beside the manifest as the
 * repository's root copy. Data dirs are plain
 * names; a hidden one (`.git`, `.dsg`) is refused here, whoever configured it.
 */
export function projectScope(dataDirs: readonly string[]): Scope {
  const names = [...new Set(dataDirs)];
  for (const d of names) {
    const why = dataDirProblem(d);
    if (why) throw new ValidationError(`data directory ${JSON.stringify(d)} ${why}`, { field: 'data_dirs', path: d });
  }
  const set = new Set(names);
  const dataDirOf = (p: string): string | null => {
    if (p === CONFIG_FILE) return '';
    const parts = p.split('/');
    if (parts.some(isHidden)) return null;
    const i = parts.slice(0, -1).findIndex((c) => set.has(c));
    return i < 0 ? null : parts.slice(0, i + 1).join('/');
  };
  return {
    dataDirs: names,
    dataDirOf,
    inDataTree: (dir) => dir.split('/').some((c) => set.has(c)),
    problem: (e) => {
      const d = dataDirOf(e.path);
      if (d === null) {
        if (e.path.split('/').some(isHidden)) return 'a hidden name (.git, .dsg, a dotfile): never written by dsg';
        // the config change that would take it in: its directory's name as one more data dir (the original's rule: any component)
        const dir = e.path.split('/').slice(0, -1).at(-1);
        const include =
          dir !== undefined
            ? `; data_dirs with ${JSON.stringify(dir)} in .dsgconfig.yml would include it`
            : '; no data_dirs can include a file at the project root';
        return `outside the data directories (no ${names.join(', ') || 'data directory'} in its path)${include}`;
      }
      if (e.type === 'link') {
        if (d === '') return 'the project config cannot be a symlink';
        return linkTargetProblem(e.path, e.reference ?? '', names);
      }
      return null;
    },
  };
}

/** The key two names share when a case-insensitive, normalizing filesystem (macOS, Windows) would make them one file. */
export const foldKey = (relPath: string): string => relPath.normalize('NFC').toLowerCase();
