import { linkTargetProblem, ValidationError } from '@dsg/contracts';
import { CONFIG_FILE } from './config-file.js';
import type { ManifestEntry } from './model.js';
import { validateName } from './names.js';

/**
 * Which paths belong to this client's project: THE scope rule, used by the
 * scanner (what is read) and the sync engine (what of the repository may be
 * written here). A repository entry outside it is held back: never
 * downloaded, never deleted, carried into the next snapshot untouched.
 */
export interface Scope {
  readonly dataDirs: readonly string[];
  /** the data directory that holds `p`, '' for the config file, null when `p` is out of scope */
  dataDirOf(p: string): string | null;
  /**
   * Why `e` may not be written into this working copy (outside the data
   * directories, inside `.git`/`.dsg` at any depth and in any case, a link
   * that fails the write rule or leaves its data directory), or null.
   */
  problem(e: Pick<ManifestEntry, 'path' | 'type'> & { reference?: string }): string | null;
}

/** A component no tool of ours may write into, whatever its case (case-insensitive clients: `.DSG/` is `.dsg/`). */
const isGuarded = (c: string): boolean => {
  const l = c.toLowerCase();
  return l === '.dsg' || l === '.git';
};

/**
 * The scope of `dataDirs`. Each must be a valid relative name with no hidden
 * component (`.dsg`, `.git`, …): a data dir that widens the scope to a
 * hidden tree is refused here, whoever configured it.
 */
export function projectScope(dataDirs: readonly string[]): Scope {
  const dirs = [...new Set(dataDirs)];
  for (const d of dirs) {
    const why = validateName(d);
    if (why) throw new ValidationError(`data directory ${JSON.stringify(d)} refused: ${why}`, { field: 'data_dirs', path: d });
    if (d.split('/').some((c) => c.startsWith('.'))) {
      throw new ValidationError(`data directory ${JSON.stringify(d)} refused: a hidden name (.dsg, .git, …) cannot be a data directory`, {
        field: 'data_dirs',
        path: d,
      });
    }
  }
  // Nested data dirs (`a` and `a/b`): the outer one holds the path.
  const top = dirs.filter((d) => !dirs.some((x) => x !== d && d.startsWith(x + '/')));
  const dataDirOf = (p: string): string | null => {
    if (p === CONFIG_FILE) return '';
    if (p.split('/').some(isGuarded)) return null;
    return top.find((d) => p.startsWith(d + '/')) ?? null;
  };
  return {
    dataDirs: top,
    dataDirOf,
    problem: (e) => {
      const d = dataDirOf(e.path);
      if (d === null) {
        return e.path.split('/').some(isGuarded)
          ? 'inside .git or .dsg: never written by dsg'
          : `outside the data directories (${top.join(', ') || 'none configured'})`;
      }
      if (e.type === 'link') {
        if (d === '') return 'the project config cannot be a symlink';
        return linkTargetProblem(e.path, e.reference ?? '', top);
      }
      return null;
    },
  };
}

/** The key two names share when a case-insensitive, normalizing filesystem (macOS, Windows) would make them one file. */
export const foldKey = (p: string): string => p.normalize('NFC').toLowerCase();
