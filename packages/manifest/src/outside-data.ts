/**
 * Files outside every data directory. The scan passes them over (only data
 * directories are synced), but with the task layout (`tasks/<t>/input`) a
 * file in `tasks/<t>/hand/` may well be data its owner expects synced, so
 * the walks count them on their way (no extra pass) and status/init say so.
 */

/**
 * Directory names whose files are tools' output or installed packages, not
 * anyone's data: not counted (hidden names, `.venv` and `.git` among them,
 * and the ignore rules are never walked at all).
 */
export const JUNK_DIRS: ReadonlySet<string> = new Set([
  'node_modules',
  '__pycache__',
  'venv',
  'renv',
  'site-packages',
  'bower_components',
]);

/** What the walk found outside the data directories: every directory holding such files ('' is the project root), path order. */
export interface OutsideData {
  files: number;
  directories: { path: string; files: number }[];
}

/** Counts files outside the data directories per directory; a walk calls `add` with each one's parent. */
export class OutsideDataCounter {
  private readonly dirs = new Map<string, number>();
  // a directory's files arrive together: its junk test runs once per directory, not per file
  private lastDir: string | null = null;
  private lastJunk = false;

  /** One file (or link) outside the data dirs, in directory `dir` (relative, '' = the root). */
  add(dir: string): void {
    if (dir !== this.lastDir) {
      this.lastDir = dir;
      this.lastJunk = dir !== '' && dir.split('/').some((c) => JUNK_DIRS.has(c));
    }
    if (this.lastJunk) return;
    this.dirs.set(dir, (this.dirs.get(dir) ?? 0) + 1);
  }

  result(): OutsideData {
    let files = 0;
    const directories = [...this.dirs]
      .map(([p, n]) => ((files += n), { path: p, files: n }))
      .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    return { files, directories };
  }
}

/**
 * `3 files in 2 directories are not in any data dir: ./, tasks/a/hand/`: the
 * first `max` directories by path, then `…`; null when there are none.
 */
export function describeOutsideData(o: OutsideData, max = 4): string | null {
  if (o.files === 0) return null;
  const names = o.directories.slice(0, max).map((d) => (d.path === '' ? './' : `${d.path}/`));
  if (o.directories.length > max) names.push('…');
  const files = o.files === 1 ? '1 file' : `${o.files} files`;
  const dirs = o.directories.length === 1 ? '1 directory' : `${o.directories.length} directories`;
  return `${files} in ${dirs} ${o.files === 1 ? 'is' : 'are'} not in any data dir: ${names.join(', ')}`;
}
