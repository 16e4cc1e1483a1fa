import path from 'node:path';
import { assertSafeRelativePath } from '@dsg/contracts';
import { UsageError } from '../output/errors.js';

/** A user-given file (relative to cwd, or absolute) as a project-relative POSIX path, refused if outside. */
export function repoRelative(root: string, cwd: string, file: string): string {
  const abs = path.resolve(cwd, file);
  const rel = path.relative(root, abs);
  if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) {
    throw new UsageError(`${file} is not inside the project ${root}`, 'Give a path inside the project directory.');
  }
  const posix = rel.split(path.sep).join('/');
  assertSafeRelativePath(posix);
  return posix;
}
