// Bundles the agent into one file (dist/dsg-agent.mjs) that runs with plain
// `node` on a server: installing the agent is copying this file.
import { build } from 'esbuild';
import { readFileSync } from 'node:fs';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
await build({
  entryPoints: [new URL('../dist/main.js', import.meta.url).pathname],
  outfile: new URL('../dist/dsg-agent.mjs', import.meta.url).pathname,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  // native modules cannot be bundled; the server-side agent needs none of ssh2's optional ones
  external: ['cpu-features', '*.node', '@node-rs/xxhash-*', 'lz4-napi-*'],
  define: { AGENT_BUNDLED_VERSION: JSON.stringify(pkg.version) },
  banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
  logLevel: 'warning',
});
