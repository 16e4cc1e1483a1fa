import { ValidationError } from './errors.js';

/** THE hidden-name rule: a path component starting with `.` (`.dsg`, `.git`, `.env`…) is never data. */
export const isHidden = (component: string): boolean => component.startsWith('.');

/**
 * Lexical containment, the rule a manifest READER applies (lenient: a
 * manifest holding a link that fails the write rule below is still read, and
 * that entry is held back): relative, POSIX, no NUL, and resolved from the
 * link's DIRECTORY it neither climbs out of the tree nor is the tree's root.
 * Returns the reason, or null.
 */
export function linkTargetEscapes(linkPath: string, target: string): string | null {
  if (typeof target !== 'string' || target.length === 0) return 'empty symlink target';
  if (target.length > 4096) return 'symlink target longer than 4096 characters';
  if (target.includes('\0')) return 'symlink target contains NUL';
  if (target.startsWith('/')) return 'absolute symlink target';
  if (/^[A-Za-z]:/.test(target) || target.includes('\\')) return 'non-POSIX symlink target';
  const stack = linkPath.split('/').slice(0, -1);
  for (const part of target.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (stack.length === 0) return 'symlink target escapes the project';
      stack.pop();
    } else stack.push(part);
  }
  if (stack.length === 0) return 'symlink target is the project root';
  return null;
}

/**
 * THE rule for WRITING a symlink, on the client and at every backend and the
 * agent (and the scanner, so what it records can be written back): the
 * reader's rule above, plus
 * - no `..` after a name (`a/..`, `l1/..`),
 * - the resolved target never enters a hidden component (`.dsg/`, `.git/`,
 *   anything starting with `.`, whatever its case),
 * - with `scope` (data-directory NAMES, matched at any depth as the
 *   scanner does: `tasks/x/input/…` is data), the resolved target is data: a
 *   directory so named, or something beneath one. A link may point from
 *   `output/` into `input/` (the manifest worked example does), never at the
 *   project's code or config.
 *
 * Why no `..` after a name: together with "nothing is ever written through a
 * symlinked parent" (resolveBeneath) it makes this LEXICAL check a PHYSICAL
 * guarantee without touching the disk. `..` then only climbs the link's own
 * parents, which are real directories; after that the target only descends,
 * and every link it descends through is inside by the same rule. The agent
 * escape `l1 -> .`, `l2 -> l1/..` is refused at `l2`.
 */
export function linkTargetProblem(linkPath: string, target: string, scope?: readonly string[]): string | null {
  const lexical = linkTargetEscapes(linkPath, target);
  if (lexical) return lexical;
  const stack = linkPath.split('/').slice(0, -1);
  let descended = false;
  for (const part of target.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (descended) return 'symlink target has ".." after a name (it could climb out through another link)';
      stack.pop();
    } else {
      descended = true;
      stack.push(part);
    }
  }
  const hidden = stack.find(isHidden);
  if (hidden !== undefined) return `symlink target enters the hidden name ${JSON.stringify(hidden)}`;
  if (scope !== undefined && !stack.some((c) => scope.includes(c))) {
    return `symlink target is outside the data directories (no ${scope.join(', ') || 'data directory'} in its path)`;
  }
  return null;
}

/** linkTargetProblem, thrown as a ValidationError naming the link. */
export function assertSafeLinkTarget(linkPath: string, target: string, scope?: readonly string[]): void {
  const why = linkTargetProblem(linkPath, target, scope);
  if (why) {
    const t = typeof target === 'string' ? target : String(target);
    throw new ValidationError(
      `refused link ${JSON.stringify(linkPath.slice(0, 200))} -> ${JSON.stringify(t.slice(0, 200))}: ${why}`,
      {
        path: linkPath.slice(0, 4096),
      },
    );
  }
}
