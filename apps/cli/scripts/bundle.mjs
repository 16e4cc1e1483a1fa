// Bundles the CLI (and the demo) with esbuild after tsc. Why: @dsg/transports
// imports ssh2 (CommonJS) with named imports that plain Node ESM cannot
// resolve; esbuild's CJS interop handles them. Packages with native addons
// stay external, imported by their resolved absolute path (the bundle runs
// from this workspace: scripts/demo.sh, the bin of @dsg/cli).
import { build } from 'esbuild';

const NATIVE = /^(lz4-napi|@node-rs\/xxhash|cpu-features)(\/|$)/;
const nativeExternal = {
  name: 'native-external',
  setup(b) {
    b.onResolve({ filter: NATIVE }, async (args) => {
      if (args.pluginData === 'inner') return undefined;
      const r = await b.resolve(args.path, { resolveDir: args.resolveDir, kind: args.kind, pluginData: 'inner' });
      if (r.errors.length) return { path: args.path, external: true };
      return { path: r.path, external: true };
    });
  },
};

for (const [entry, out] of [
  ['../src/main.ts', '../dist/main.js'],
  ['../src/demo.ts', '../dist/demo.js'],
]) {
  await build({
    entryPoints: [new URL(entry, import.meta.url).pathname],
    outfile: new URL(out, import.meta.url).pathname,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    sourcemap: true,
    plugins: [nativeExternal],
    external: ['*.node'],
    banner: { js: "import { createRequire as __cr } from 'node:module'; import { fileURLToPath as __fu } from 'node:url'; import { dirname as __dn } from 'node:path'; const require = __cr(import.meta.url); const __filename = __fu(import.meta.url); const __dirname = __dn(__filename);" },
    logLevel: 'warning',
  });
}
