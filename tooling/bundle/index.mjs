// One way to turn an app's tsc output into what ships: ESM for plain `node`,
// every JS dependency inside, native add-ons left to `node_modules` (they
// cannot be bundled).
import { build } from 'esbuild';
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';

/**
 * Bundle `entry` (a file under `appDir`) into `outfile`, or with `splitting`
 * into `outdir` as the entry plus chunks that load on first use.
 * `versionDefine` names the global replaced by the app's package.json version
 * (the bundle has no package.json beside it). `external`: the native
 * packages the app resolves from its own `node_modules` at run time.
 *
 * @param {{ appDir: string; entry: string; versionDefine: string; external: string[]; outfile?: string; outdir?: string; entryName?: string }} o
 */
export async function bundleApp(o) {
  const pkg = JSON.parse(readFileSync(path.join(o.appDir, 'package.json'), 'utf8'));
  const entry = path.join(o.appDir, o.entry);
  const where = o.outdir
    ? {
        entryPoints: { [o.entryName ?? path.basename(entry, '.js')]: entry },
        outdir: path.join(o.appDir, o.outdir),
        splitting: true,
        outExtension: { '.js': '.mjs' },
        chunkNames: 'chunks/[name]-[hash]',
      }
    : { entryPoints: [entry], outfile: path.join(o.appDir, o.outfile) };
  // chunk names carry content hashes: a stale chunk would lie there unused
  if (o.outdir) rmSync(path.join(o.appDir, o.outdir), { recursive: true, force: true });
  await build({
    ...where,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    external: ['*.node', ...o.external],
    define: { [o.versionDefine]: JSON.stringify(pkg.version) },
    // CommonJS dependencies (commander, ssh2, yaml's cjs parts) use require() and
    // __dirname (ssh2 at load time), which ESM does not define
    banner: {
      js: [
        "import { createRequire as __cr } from 'node:module';",
        "import { fileURLToPath as __fu } from 'node:url';",
        "import { dirname as __dn } from 'node:path';",
        'const require = __cr(import.meta.url);',
        'const __filename = __fu(import.meta.url);',
        'const __dirname = __dn(__filename);',
      ].join(' '),
    },
    logLevel: 'warning',
  });
}
