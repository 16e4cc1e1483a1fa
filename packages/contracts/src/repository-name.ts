import { ValidationError } from './errors.js';

/**
 * The longest repository name. A name is a directory (`<root>/<name>`) and a
 * ZFS dataset component (`<pool>/<name>`, with `-sync-<tx>` siblings beside
 * it), and ZFS bounds a whole dataset name to 255 bytes: 100 leaves room for
 * the pool and the temp suffixes.
 */
export const REPOSITORY_NAME_MAX = 100;

const NAME = new RegExp(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,${REPOSITORY_NAME_MAX - 1}}$`);

export const REPOSITORY_NAME_HINT =
  'A repository name is 1 to 100 letters, digits, ".", "_" and "-", starting with a letter or digit, without "..".';

/**
 * Why `name` cannot be a repository name, or null when it can: the one rule
 * the CLI's config, the agent protocol and the ZFS layer check.
 */
export function repositoryNameProblem(name: unknown): string | null {
  if (typeof name !== 'string') return 'is not a string';
  if (name.length === 0) return 'is empty';
  if (name.length > REPOSITORY_NAME_MAX)
    return `is ${name.length} characters long; the limit is ${REPOSITORY_NAME_MAX} (it names a directory and a ZFS dataset)`;
  if (!NAME.test(name)) return 'may hold only letters, digits, ".", "_" and "-", and must start with a letter or digit';
  if (name.includes('..')) return 'may not contain ".."';
  return null;
}

/** `name` when it is a repository name; else a ValidationError (field `repo`) quoting at most 120 characters of it. */
export function validateRepositoryName(name: unknown): string {
  if (repositoryNameProblem(name) !== null) {
    throw new ValidationError(
      `refused repository name ${JSON.stringify(String(name).slice(0, 120))}`,
      { field: 'repo' },
      {
        recoveryHint: REPOSITORY_NAME_HINT,
      },
    );
  }
  return name as string;
}
