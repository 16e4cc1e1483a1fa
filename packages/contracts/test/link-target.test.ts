import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  assertSafeLinkTarget,
  linkTargetEscapes,
  linkTargetProblem,
  resolveBeneath,
  ValidationError,
} from '../src/index.js';

/**
 * The one link-target gate. Each row: link path, target, optional scope,
 * then what the READER rule (linkTargetEscapes) and the WRITE rule
 * (linkTargetProblem) say: null = allowed, else a fragment of the reason.
 */
const ROWS: [
  link: string,
  target: string,
  scope: string[] | undefined,
  reader: string | null,
  writer: string | null,
][] = [
  // plain and harmless
  ['a', 'b', undefined, null, null],
  ['d/a', 'b', undefined, null, null],
  ['d/a', './b', undefined, null, null],
  ['d/a', './x', undefined, null, null],
  ['d/e/a', '../b', undefined, null, null],
  ['d/e/a', '../../b', undefined, null, null],
  ['d/a', 'e/f/g', undefined, null, null],
  ['d/a', '.', undefined, null, null], // the link's own directory d: inside
  ['d/e/a', '..', undefined, null, null], // d
  ['d/a', 'b//c/./d', undefined, null, null],
  // the agent escape: l1 -> . is the tree's root (refused), l2 -> l1/.. climbs through a link
  ['l1', '.', undefined, 'project root', 'project root'],
  ['l2', 'l1/..', undefined, 'project root', 'project root'],
  ['sub/l1', '.', undefined, null, null], // sub itself: a real directory, fine
  ['sub/l2', 'l1/..', undefined, null, '".." after a name'], // lexically sub, physically sub/.. (l1 is a link)
  ['sub/l3', 'l2/../x', undefined, null, '".." after a name'],
  ['d/e/l', 'x/../../y', undefined, null, '".." after a name'],
  ['d/l', 'a/b/../../c', undefined, null, '".." after a name'],
  // lexical escapes
  ['a', '../x', undefined, 'escapes', 'escapes'],
  ['d/a', '../../x', undefined, 'escapes', 'escapes'],
  ['d/a', '..', undefined, 'project root', 'project root'],
  ['d/e/a', '../../../etc/passwd', undefined, 'escapes', 'escapes'],
  ['a', '/etc/passwd', undefined, 'absolute', 'absolute'],
  ['a', '', undefined, 'empty', 'empty'],
  ['a', 'x\0y', undefined, 'NUL', 'NUL'],
  ['a', 'C:/x', undefined, 'non-POSIX', 'non-POSIX'],
  ['a', 'x\\..\\..\\y', undefined, 'non-POSIX', 'non-POSIX'],
  ['a', 'x'.repeat(4097), undefined, '4096', '4096'],
  // hidden names: allowed to read, never written
  ['a', '.git/config', undefined, null, 'hidden name ".git"'],
  ['d/a', '../.dsg/manifest.json', undefined, null, 'hidden name ".dsg"'],
  ['d/a', '.ssh/authorized_keys', undefined, null, 'hidden name ".ssh"'],
  ['d/a', 'x/.Git/hooks', undefined, null, 'hidden name ".Git"'],
  ['.hidden/a', 'b', undefined, null, 'hidden name ".hidden"'], // resolves inside .hidden/
  // scope: the project's data directories
  ['input/a', 'b', ['input'], null, null],
  ['input/x/a', '../b', ['input'], null, null],
  ['input/a', '../output/b', ['input'], null, 'outside the data directories'],
  ['input/a', '../output/b', ['input', 'output'], null, null], // from one data directory into another
  ['input/a', '../src/main.py', ['input', 'output'], null, 'outside the data directories'],
  ['input/a', '.', ['input'], null, null], // the data directory itself is data (`input/up -> ../output` too)
  ['input/a', '../output', ['input', 'output'], null, null],
  ['input/a', '..', ['input'], 'project root', 'project root'],
  ['tasks/t/input/a', '../../u/output/b', ['input', 'output'], null, null], // data dirs at any depth (the task layout)
  ['tasks/t/input/a', '../b', ['input'], null, 'outside the data directories'],
  ['inputs/a', 'b', ['input'], null, 'outside the data directories'], // a prefix is not a parent
  ['input/a', 'b', [], null, 'outside the data directories'],
];

describe('link-target gate (table)', () => {
  it.each(ROWS)('%s -> %s (scope %j): reader %s, writer %s', (link, target, scope, reader, writer) => {
    const r = linkTargetEscapes(link, target);
    if (reader === null) expect(r).toBeNull();
    else expect(r).toContain(reader);
    const w = linkTargetProblem(link, target, scope);
    if (writer === null) {
      expect(w).toBeNull();
      expect(() => assertSafeLinkTarget(link, target, scope)).not.toThrow();
    } else {
      expect(w).toContain(writer);
      let caught: unknown;
      try {
        assertSafeLinkTarget(link, target, scope);
      } catch (e) {
        caught = e;
      }
      expect(caught).toBeInstanceOf(ValidationError);
      expect((caught as ValidationError).message).toContain(writer);
      expect((caught as ValidationError).details.path).toBe(link.slice(0, 4096));
    }
  });

  it('the writer rule is never looser than the reader rule', () => {
    for (const [link, target, scope] of ROWS) {
      if (linkTargetEscapes(link, target) !== null) expect(linkTargetProblem(link, target, scope)).not.toBeNull();
    }
  });

  it('non-string targets are refused, not thrown on', () => {
    expect(linkTargetEscapes('a', 42 as unknown as string)).toContain('empty');
    expect(() => assertSafeLinkTarget('a', null as unknown as string)).toThrow(ValidationError);
  });
});

describe('the writer rule is physical: every accepted link, followed on disk, stays in the tree', () => {
  let base: string;
  beforeAll(async () => {
    base = await mkdtemp(path.join(tmpdir(), 'dsg-link-gate-'));
  });
  afterAll(async () => {
    await rm(base, { recursive: true, force: true });
  });

  it('a chain of accepted links never leaves the tree, whatever order they are written in', async () => {
    const tree = path.join(base, 'tree');
    await mkdir(path.join(tree, 'sub/deep'), { recursive: true });
    const candidates: [string, string][] = [
      ['sub/l1', '.'],
      ['sub/l2', 'l1/..'],
      ['sub/l3', 'l2/..'],
      ['sub/deep/l4', '..'],
      ['sub/deep/l5', '../l1'],
      ['sub/deep/l6', 'l4/l1/..'],
      ['sub/deep/l7', '../../sub/l1'],
      ['l8', 'sub/deep/l4'],
      ['l9', 'l8/..'],
    ];
    const written: string[] = [];
    for (const [link, target] of candidates) {
      if (linkTargetProblem(link, target) !== null) continue;
      await symlink(target, path.join(tree, link));
      written.push(link);
    }
    expect(written).toEqual(['sub/l1', 'sub/deep/l4', 'sub/deep/l5', 'sub/deep/l7', 'l8']);
    const { realpath } = await import('node:fs/promises');
    const real = await realpath(tree);
    for (const link of written) {
      const to = await realpath(path.join(tree, link));
      expect(to === real || to.startsWith(real + path.sep)).toBe(true);
    }
  });
});

describe('resolveBeneath: nothing is written beyond a symbolic link', () => {
  let root: string;
  beforeAll(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'dsg-beneath-'));
    await mkdir(path.join(root, 'd/e'), { recursive: true });
    await symlink('e', path.join(root, 'd/inside'));
    await symlink('/etc', path.join(root, 'out'));
    await writeFile(path.join(root, 'f'), 'x');
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it.each([
    ['d/e/x', null],
    ['d/new/deeper/x', null], // missing parents are fine (the caller makes them and checks again)
    ['d/inside', null], // the final component may be a link: it is not followed
    ['out', null],
    ['d/inside/x', 'is a symlink'], // even a link pointing inside
    ['out/passwd', 'is a symlink'],
    ['f/x', 'not a directory'],
    ['../x', '".." component'],
    ['/etc/passwd', 'absolute'],
    ['d/./x', '"." component'],
    [`d/${'n'.repeat(256)}`, 'longer than 255 bytes'],
  ])('%s: %s', async (rel, why) => {
    if (why === null) await expect(resolveBeneath(root, rel)).resolves.toBe(path.join(root, rel));
    else await expect(resolveBeneath(root, rel)).rejects.toThrow(why);
  });
});
