// Bundles the agent into one file (dist/dsg-agent.mjs) that runs with plain
// `node` on a server: installing the agent is copying this file.
import { bundleApp } from '@dsg/bundle';

await bundleApp({
  appDir: new URL('..', import.meta.url).pathname,
  entry: 'dist/main.js',
  outfile: 'dist/dsg-agent.mjs',
  versionDefine: 'AGENT_BUNDLED_VERSION',
  // the server-side agent needs none of ssh2's optional native parts, and hashes
  // with WebAssembly: a server installs it by copying one file
  external: ['cpu-features', '@node-rs/xxhash-*', 'lz4-napi-*'],
});
