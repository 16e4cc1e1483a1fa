import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT, requireRegistry } from '@dsg/testenv';

const CHECK = path.join(REPO_ROOT, 'tooling', 'release', 'check.mjs');
const reg = requireRegistry();

interface Pkg {
  name: string;
  private?: boolean;
  readme?: boolean;
  /** files under dist/ to create */
  dist?: string[];
  exports?: Record<string, unknown>;
  types?: string;
  dependencies?: Record<string, string>;
}

const good = (name: string, extra: Partial<Pkg> = {}): Pkg => ({
  name,
  readme: true,
  dist: ['index.js', 'index.d.ts'],
  exports: { '.': { types: './dist/index.d.ts', import: './dist/index.js' } },
  types: './dist/index.d.ts',
  ...extra,
});

/** A pnpm workspace on disk with these packages under pkgs/. */
function workspace(pkgs: Pkg[]): string {
  const root = mkdtempSync(path.join(os.tmpdir(), 'dsg-release-check-test-'));
  writeFileSync(path.join(root, 'package.json'), JSON.stringify({ name: 'fixture-root', private: true }));
  writeFileSync(path.join(root, 'pnpm-workspace.yaml'), 'packages:\n  - pkgs/*\n');
  for (const p of pkgs) {
    const dir = path.join(root, 'pkgs', p.name.split('/').pop()!);
    mkdirSync(path.join(dir, 'dist'), { recursive: true });
    for (const f of p.dist ?? []) writeFileSync(path.join(dir, 'dist', f), f.endsWith('.d.ts') ? 'export {};\n' : '');
    if (p.readme) writeFileSync(path.join(dir, 'README.md'), `# ${p.name}\n`);
    const manifest = {
      name: p.name,
      version: '1.2.3',
      type: 'module',
      ...(p.private ? { private: true } : {}),
      ...(p.exports ? { exports: p.exports } : {}),
      ...(p.types ? { types: p.types } : {}),
      files: ['dist', 'README.md'],
      ...(p.dependencies ? { dependencies: p.dependencies } : {}),
    };
    writeFileSync(path.join(dir, 'package.json'), JSON.stringify(manifest, null, 2));
  }
  // pnpm pack resolves workspace: ranges from the installed workspace, as in the real repository
  // (only then: the other fixtures name what no install could find, which is the point)
  if (!pkgs.some((p) => Object.values(p.dependencies ?? {}).some((v) => v.startsWith('workspace:')))) return root;
  const r = spawnSync('pnpm', ['install', '--offline', '--reporter=silent'], { cwd: root, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`pnpm install in the fixture workspace: ${r.stderr}`);
  return root;
}

function check(root: string, registry = reg!.url): { code: number; out: string } {
  const r = spawnSync('node', [CHECK, '--root', root, '--registry', registry], { encoding: 'utf8' });
  return { code: r.status ?? -1, out: r.stdout + r.stderr };
}

describe.skipIf(!reg)('release check: a package that would publish broken stops the release', () => {
  it('passes complete packages, with a workspace dependency replaced by its version', () => {
    const r = check(workspace([good('@fx/a'), good('@fx/b', { dependencies: { '@fx/a': 'workspace:*' } })]));
    expect(r.out).toContain('release check: 2 packages ready');
    expect(r.code).toBe(0);
  });

  it.each([
    ['no README', good('@fx/x', { readme: false }), /@fx\/x: no README\.md in the tarball/],
    ['no dist', good('@fx/x', { dist: [] }), /@fx\/x: no dist\/ in the tarball/],
    [
      'an export whose file is not built',
      good('@fx/x', { dist: ['index.d.ts'] }),
      /@fx\/x: \.\/dist\/index\.js is named in package\.json but not in the tarball/,
    ],
    [
      'an export without types',
      good('@fx/x', { exports: { '.': { import: './dist/index.js' } } }),
      /@fx\/x: export "\." has no "types" condition/,
    ],
    ['no types at all', good('@fx/x', { types: undefined }), /@fx\/x: no "types" in package\.json/],
    [
      'a dependency the registry does not have',
      good('@fx/x', { dependencies: { '@dsg/never-published-anywhere': '^1.0.0' } }),
      /@fx\/x: dependencies: @dsg\/never-published-anywhere@\^1\.0\.0 is not in the registry/,
    ],
    [
      'a local file dependency',
      good('@fx/x', { dependencies: { other: 'file:../other' } }),
      /@fx\/x: dependencies: other@file:\.\.\/other cannot be installed from a registry/,
    ],
  ])('refuses %s', (_what, pkg, message) => {
    const r = check(workspace([good('@fx/fine'), pkg]));
    expect(r.code).toBe(1);
    expect(r.out).toMatch(message);
    expect(r.out).toContain('1 of 2 packages would publish broken; nothing was published');
    expect(r.out).not.toContain('@fx/fine:');
  });

  it('passes a dependency the registry has (through its uplink), and says so when it cannot ask the registry', () => {
    const root = workspace([good('@fx/a', { dependencies: { 'left-pad': '^1.3.0' } })]);
    const r = check(root);
    expect(r.out).toContain('release check: 1 packages ready');
    expect(r.code).toBe(0);
    const down = check(root, 'http://127.0.0.1:1/');
    expect(down.code).toBe(1);
    expect(down.out).toMatch(
      /release check: cannot ask the registry about left-pad@\^1\.3\.0: .*; nothing was published/,
    );
    expect(down.out).not.toContain('is not in the registry');
  });

  it('refuses a public package that depends on a private one', () => {
    const r = check(
      workspace([
        good('@fx/secret', { private: true }),
        good('@fx/x', { dependencies: { '@fx/secret': 'workspace:*' } }),
      ]),
    );
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/@fx\/x: dependencies: @fx\/secret is private and never published/);
  });
});

describe('release check: every pending changeset is one a release consumes', () => {
  const changesets = (root: string, files: Record<string, string>): void => {
    mkdirSync(path.join(root, '.changeset'), { recursive: true });
    for (const [f, text] of Object.entries(files)) writeFileSync(path.join(root, '.changeset', f), text);
  };
  const problems = async (root: string): Promise<string[]> => {
    const mod = (await import(pathToFileURL(CHECK).href)) as { changesetProblems(root: string): string[] };
    return mod.changesetProblems(root);
  };

  it('names a changeset that bumps a private package or one the workspace does not have', async () => {
    const root = workspace([good('@fx/pub'), good('@fx/tool', { private: true })]);
    changesets(root, {
      'README.md': '# not a changeset\n',
      'ok.md': "---\n'@fx/pub': patch\n---\n\nfine\n",
      'private.md': "---\n'@fx/tool': minor\n'@fx/pub': patch\n---\n\ntooling\n",
      'gone.md': "---\n'@fx/renamed': patch\n---\n\nold name\n",
      'empty.md': '---\n---\n',
      'none.md': 'no front matter\n',
      'broken.md': "---\n'@fx/pub: [patch\n---\n\nunclosed\n",
    });
    const found = await problems(root);
    expect(found[0]).toMatch(/^\.changeset\/broken\.md: its front matter is not YAML \(/);
    expect(found.slice(1)).toEqual([
      '.changeset/gone.md: @fx/renamed is not a package of this workspace',
      '.changeset/none.md: no front matter naming the packages it bumps',
      '.changeset/private.md: @fx/tool is private, so no release consumes this changeset',
    ]);
    // the CLI refuses before packing anything, and says what to do
    const r = spawnSync('node', [CHECK, '--root', root], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/private\.md: @fx\/tool is private/);
    expect(r.stderr).toMatch(/hint: name only public packages/);
  });

  it("this repository's pending changesets all name public packages", async () => {
    expect(await problems(REPO_ROOT)).toEqual([]);
  });
});
