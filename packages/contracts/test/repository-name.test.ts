import { describe, expect, it } from 'vitest';
import { REPOSITORY_NAME_MAX, ValidationError, repositoryNameProblem, validateRepositoryName } from '../src/index.js';

describe('repository name (the one rule of the CLI config, the agent and the ZFS layer)', () => {
  it('takes 1 to 100 letters, digits, ".", "_", "-" starting with a letter or digit', () => {
    for (const n of ['a', 'my-repo.v2', 'A_1', 'x'.repeat(REPOSITORY_NAME_MAX)])
      expect(repositoryNameProblem(n), n).toBeNull();
    expect(validateRepositoryName('demo')).toBe('demo');
  });

  it('refuses the rest, saying why', () => {
    expect(repositoryNameProblem('x'.repeat(101))).toMatch(/101 characters long; the limit is 100/);
    expect(repositoryNameProblem('')).toBe('is empty');
    expect(repositoryNameProblem(7)).toBe('is not a string');
    for (const n of ['.hidden', '-r', '_a', 'a/b', 'a b', 'a\0', 'é'])
      expect(repositoryNameProblem(n), n).toMatch(/only letters/);
    expect(repositoryNameProblem('a..b')).toMatch(/"\.\."/);
  });

  it('validateRepositoryName: a ValidationError on field repo, quoting at most 120 characters', () => {
    const e = (() => {
      try {
        validateRepositoryName('y'.repeat(500));
      } catch (x) {
        return x;
      }
      return null;
    })();
    expect(e).toBeInstanceOf(ValidationError);
    expect((e as ValidationError).code).toBe('VALIDATION');
    expect((e as ValidationError).details).toEqual({ field: 'repo' });
    expect((e as ValidationError).message).toBe(`refused repository name "${'y'.repeat(120)}"`);
  });
});
