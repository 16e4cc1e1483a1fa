#!/usr/bin/env node
// @ts-check
/**
 * The release gate (`pnpm release` runs it before `changeset publish`): packs
 * every public workspace package exactly as `pnpm publish` would and refuses
 * the release when a tarball lacks its README, its built `dist`, the files
 * its `main`/`types`/`bin`/`exports` name, types for an export, or when it
 * depends on something the registry will not have (a private workspace
 * package, a `workspace:`/`file:`/`link:` range left in, a version of a
 * workspace package other than the one being released, or an external
 * package/range the configured registry does not know), and when a pending
 * changeset names a package no release would consume it for.
 *
 * Hand-written because no published tool checks a packed tarball against its
 * own manifest and the registry in one pass; `publint` and `are-the-types-wrong`
 * each cover part of it and need network access to their own services.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parse } from 'yaml';

/** @typedef {{ name: string, version: string, dir: string, private: boolean }} WorkspacePackage */
/** @typedef {{ name: string, problems: string[] }} PackageReport */

/**
 * The workspace's packages from pnpm-workspace.yaml. Only `dir/*` and plain
 * `dir` globs are used in this repository; anything else is refused rather
 * than half-understood.
 * @param {string} root
 * @returns {WorkspacePackage[]}
 */
export function workspacePackages(root) {
  const spec = parse(readFileSync(path.join(root, 'pnpm-workspace.yaml'), 'utf8')) ?? {};
  /** @type {string[]} */
  const globs = spec.packages ?? [];
  const dirs = [];
  for (const g of globs) {
    if (/^[^*]+\/\*$/.test(g)) {
      const base = path.join(root, g.slice(0, -2));
      if (!existsSync(base)) continue;
      for (const d of readdirSync(base, { withFileTypes: true }))
        if (d.isDirectory()) dirs.push(path.join(base, d.name));
    } else if (!g.includes('*')) dirs.push(path.join(root, g));
    else throw new Error(`pnpm-workspace.yaml: glob ${g} is not supported by the release check`);
  }
  return dirs
    .filter((d) => existsSync(path.join(d, 'package.json')))
    .map((dir) => {
      const p = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8'));
      return { name: p.name, version: p.version, dir, private: p.private === true };
    });
}

/**
 * Every file path a manifest field points at, as tarball paths.
 * @param {unknown} v
 * @param {string[]} out
 */
function targets(v, out) {
  if (typeof v === 'string') out.push(v);
  else if (v && typeof v === 'object') for (const x of Object.values(v)) targets(x, out);
}

/** @param {string} p */
const inTarball = (p) => `package/${path.posix.normalize(p.replace(/^\.\//, ''))}`;

/**
 * The packed manifest and file list of one package.
 * @param {WorkspacePackage} pkg
 * @param {string} tmp
 */
function pack(pkg, tmp) {
  const out = path.join(tmp, pkg.name.replace(/[@/]/g, '_'));
  try {
    execFileSync('pnpm', ['pack', '--pack-destination', out], { cwd: pkg.dir, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const why = String(/** @type {{ stderr?: unknown }} */ (e).stderr ?? e)
      .trim()
      .split('\n')[0];
    return { error: `pnpm pack failed: ${why}` };
  }
  const tarball = readdirSync(out).find((f) => f.endsWith('.tgz'));
  if (!tarball) throw new Error(`pnpm pack of ${pkg.name} wrote no tarball`);
  const file = path.join(out, tarball);
  const files = new Set(execFileSync('tar', ['-tzf', file], { encoding: 'utf8' }).split('\n').filter(Boolean));
  const manifest = JSON.parse(execFileSync('tar', ['-xzOf', file, 'package/package.json'], { encoding: 'utf8' }));
  return { files, manifest };
}

/**
 * Whether the configured registry (or `registry`) has a version of `name` in `range`.
 * @param {string} name @param {string} range @param {string | undefined} registry
 */
function published(name, range, registry) {
  // npm's default retries wait about 70 s on a registry that refuses connections; a release
  // gate should say so in seconds (two quick retries still ride out a blip)
  const args = [
    'view',
    `${name}@${range}`,
    'version',
    '--json',
    '--fetch-retries=2',
    '--fetch-retry-mintimeout=1000',
    '--fetch-retry-maxtimeout=4000',
  ];
  if (registry) args.push('--registry', registry);
  try {
    const out = execFileSync('npm', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
    return out !== '' && out !== '[]';
  } catch (e) {
    // E404 is the answer "not there"; anything else (network, auth) is no answer at all
    const err = String(/** @type {{ stderr?: unknown }} */ (e).stderr ?? e);
    if (/E404|404 Not Found|No match found/.test(err)) return false;
    throw new Error(`cannot ask the registry about ${name}@${range}: ${err.trim().split('\n')[0]}`);
  }
}

/**
 * Checks every public package of the workspace at `root`.
 * @param {{ root: string, registry?: string }} opts
 * @returns {PackageReport[]}
 */
export function checkRelease({ root, registry }) {
  const all = workspacePackages(root);
  const byName = new Map(all.map((p) => [p.name, p]));
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'dsg-release-check-'));
  /** @type {Map<string, boolean>} */
  const seen = new Map();
  try {
    return all
      .filter((p) => !p.private)
      .map((pkg) => {
        /** @type {string[]} */
        const problems = [];
        const packed = pack(pkg, tmp);
        if ('error' in packed) return { name: pkg.name, problems: [packed.error] };
        const { files, manifest } = packed;
        if (!files.has('package/README.md')) problems.push('no README.md in the tarball');
        if (![...files].some((f) => f.startsWith('package/dist/')))
          problems.push('no dist/ in the tarball (not built?)');
        /** @type {string[]} */
        const named = [];
        for (const field of ['main', 'module', 'types', 'typings', 'bin', 'exports']) targets(manifest[field], named);
        for (const t of new Set(named))
          if (!files.has(inTarball(t))) problems.push(`${t} is named in package.json but not in the tarball`);
        if (!manifest.types && !manifest.typings) problems.push('no "types" in package.json');
        for (const [sub, entry] of Object.entries(manifest.exports ?? {})) {
          if (entry && typeof entry === 'object' && !Array.isArray(entry) && !('types' in entry)) {
            problems.push(`export "${sub}" has no "types" condition`);
          }
        }
        for (const field of ['dependencies', 'optionalDependencies', 'peerDependencies']) {
          for (const [dep, range] of Object.entries(manifest[field] ?? {})) {
            const spec = String(range);
            if (/^(workspace|file|link|portal):/.test(spec)) {
              problems.push(`${field}: ${dep}@${spec} cannot be installed from a registry`);
              continue;
            }
            const local = byName.get(dep);
            if (local) {
              if (local.private) problems.push(`${field}: ${dep} is private and never published`);
              else if (spec.replace(/^[\^~]/, '') !== local.version) {
                problems.push(`${field}: ${dep}@${spec} is not the version released with it (${local.version})`);
              }
              continue;
            }
            const key = `${dep}@${spec}`;
            if (!seen.has(key)) seen.set(key, published(dep, spec, registry));
            if (!seen.get(key)) problems.push(`${field}: ${key} is not in the registry`);
          }
        }
        return { name: pkg.name, problems };
      });
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/**
 * Pending changesets that name something `changeset version` will never
 * consume: a private package (this repository does not version those, so the
 * file would stay pending after every release) or no package of the
 * workspace at all. One problem string per bad entry, naming the file.
 * @param {string} root
 * @returns {string[]}
 */
export function changesetProblems(root) {
  const dir = path.join(root, '.changeset');
  if (!existsSync(dir)) return [];
  const byName = new Map(workspacePackages(root).map((p) => [p.name, p]));
  /** @type {string[]} */
  const problems = [];
  for (const f of readdirSync(dir)
    .filter((n) => n.endsWith('.md') && n !== 'README.md')
    .sort()) {
    const m = /^---\r?\n([\s\S]*?)\r?\n?---/.exec(readFileSync(path.join(dir, f), 'utf8'));
    if (!m) {
      problems.push(`.changeset/${f}: no front matter naming the packages it bumps`);
      continue;
    }
    let bumps;
    try {
      bumps = parse(m[1]) ?? {};
    } catch (e) {
      problems.push(
        `.changeset/${f}: its front matter is not YAML (${String(e instanceof Error ? e.message : e).split('\n')[0]})`,
      );
      continue;
    }
    for (const name of Object.keys(bumps)) {
      const pkg = byName.get(name);
      if (!pkg) problems.push(`.changeset/${f}: ${name} is not a package of this workspace`);
      else if (pkg.private) problems.push(`.changeset/${f}: ${name} is private, so no release consumes this changeset`);
    }
  }
  return problems;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const arg = (flag) => {
    const i = process.argv.indexOf(flag);
    return i > 0 ? process.argv[i + 1] : undefined;
  };
  const root = path.resolve(arg('--root') ?? process.cwd());
  const stale = changesetProblems(root);
  if (stale.length > 0) {
    for (const p of stale) console.error(`release check: ${p}`);
    console.error('hint: name only public packages in a changeset; changes to private tooling need none');
    process.exit(1);
  }
  let reports;
  try {
    reports = checkRelease({ root, registry: arg('--registry') });
  } catch (e) {
    console.error(`release check: ${e instanceof Error ? e.message : String(e)}; nothing was published`);
    process.exit(1);
  }
  const bad = reports.filter((r) => r.problems.length > 0);
  for (const r of bad) for (const p of r.problems) console.error(`release check: ${r.name}: ${p}`);
  if (bad.length > 0) {
    console.error(
      `release check: ${bad.length} of ${reports.length} packages would publish broken; nothing was published`,
    );
    console.error('hint: build first (pnpm turbo run build), and publish every package a public one depends on');
    process.exit(1);
  }
  console.log(`release check: ${reports.length} packages ready (${reports.map((r) => r.name).join(', ')})`);
}
