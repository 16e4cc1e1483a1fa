import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPOSITORY_NAME_MAX } from '@dsg/contracts';
import { dsg, listing, sandbox, write } from './helpers.js';

// The agent and the ZFS layer take names of at most 100 characters; the config used to take 200,
// so a 101–200 character name passed validate-config and failed only at the first connection.
describe('repository name: the config takes exactly what the agent takes', () => {
  it('a name of 101 characters → exit 2 at config validation, naming the limit; 100 pass', () => {
    const sb = sandbox();
    const dir = path.join(sb.dir, 'p');
    const repos = path.join(sb.dir, 'repos');
    write(path.join(dir, 'input', 'a.csv'), 'a\n');
    for (const length of [REPOSITORY_NAME_MAX + 1, 200]) {
      write(
        path.join(dir, '.dsgconfig.yml'),
        `name: ${'n'.repeat(length)}\nrepository: {type: posix, root: ${repos}}\n`,
      );
      const before = listing(sb.dir);
      const r = dsg(dir, sb.env, 'validate-config', '--no-backend');
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toMatch(
        new RegExp(`\\.dsgconfig\\.yml:1: name: the repository name is ${length} characters long; the limit is 100`),
      );
      expect(listing(sb.dir)).toEqual(before);
    }
    write(
      path.join(dir, '.dsgconfig.yml'),
      `name: ${'n'.repeat(REPOSITORY_NAME_MAX)}\nrepository: {type: posix, root: ${repos}}\n`,
    );
    const ok = dsg(dir, sb.env, 'validate-config', '--no-backend');
    expect(ok.code, ok.stderr).toBe(0);
  });

  it('a name with ".." → exit 2 at config validation (the agent refuses it at open)', () => {
    const sb = sandbox();
    const dir = path.join(sb.dir, 'p');
    write(path.join(dir, 'input', 'a.csv'), 'a\n');
    write(
      path.join(dir, '.dsgconfig.yml'),
      `name: a..b\nrepository: {type: posix, root: ${path.join(sb.dir, 'repos')}}\n`,
    );
    const r = dsg(dir, sb.env, 'validate-config', '--no-backend');
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/\.dsgconfig\.yml:1: name: the repository name may not contain "\.\."/);
  });
});
