// Bundles the CLI into dist/bin/: the `dsg` entry (small: argument parsing
// and the command table) and chunks each command loads on first use, so
// `dsg --version` or an error outside a project never parses the transports,
// backends and schema libraries. One file would be parsed whole at every
// start (2.8 MB: measured 2× the start-up of `node -e 0`).
import { bundleApp } from '@dsg/bundle';

await bundleApp({
  appDir: new URL('..', import.meta.url).pathname,
  entry: 'dist/main.js',
  outdir: 'dist/bin',
  entryName: 'dsg',
  versionDefine: 'DSG_BUNDLED_VERSION',
  // the client hashes, compresses and lists directories natively: these are its own dependencies
  // (@dsg/dirstat finds its add-on beside its own module, so it stays a package of its own)
  external: ['cpu-features', '@node-rs/xxhash', 'lz4-napi', '@dsg/dirstat'],
});
