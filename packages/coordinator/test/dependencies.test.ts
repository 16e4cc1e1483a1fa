import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const pkgDir = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const ALLOWED = ['@dsg/contracts', '@dsg/manifest'];

// docs/ARCHITECTURE.md §1: coordinator imports contracts and manifest only, never an implementation.
describe('coordinator dependency rule', () => {
  it('package.json runtime dependencies are exactly contracts and manifest', async () => {
    const pkg = JSON.parse(await readFile(path.join(pkgDir, 'package.json'), 'utf8')) as {
      dependencies?: Record<string, string>;
      peerDependencies?: Record<string, string>;
      optionalDependencies?: Record<string, string>;
    };
    expect(Object.keys(pkg.dependencies ?? {}).sort()).toEqual(ALLOWED);
    expect(pkg.peerDependencies ?? {}).toEqual({});
    expect(pkg.optionalDependencies ?? {}).toEqual({});
  });

  it('src/ imports nothing but contracts, manifest and node builtins', async () => {
    const files = (await readdir(path.join(pkgDir, 'src'), { recursive: true })).filter((f) => f.endsWith('.ts'));
    expect(files.length).toBeGreaterThan(0);
    const bad: string[] = [];
    for (const f of files) {
      const text = await readFile(path.join(pkgDir, 'src', f), 'utf8');
      for (const m of text.matchAll(/(?:from|import)\s*\(?\s*['"]([^'"]+)['"]/g)) {
        const spec = m[1]!;
        if (spec.startsWith('.') || spec.startsWith('node:') || ALLOWED.includes(spec)) continue;
        bad.push(`${f}: ${spec}`);
      }
    }
    expect(bad).toEqual([]);
  });

  it('the eslint config forbids every implementation package', async () => {
    const text = await readFile(path.join(pkgDir, 'eslint.config.js'), 'utf8');
    for (const p of ['@dsg/zfs-ops', '@dsg/posix-ops', '@dsg/transports', '@dsg/client-fs', '@dsg/cli', '@dsg/agent']) {
      expect(text).toMatch(new RegExp(`['"]${p}['"]`)); // either quote: the formatter picks one
    }
  });
});
