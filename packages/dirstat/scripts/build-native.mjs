// Compiles native/dirstat.c into prebuilds/<platform>-<arch>/dirstat.node
// with the system C compiler against the Node-API headers (one binary for
// every Node version with Node-API 8: 20 and 24 load the same file). Plain
// `cc` rather than node-gyp: one C file, no Python/gyp toolchain, no
// download of Node's full headers. Where there is no compiler (or not a
// platform this file is written for) the package falls back to JavaScript,
// and says so here; on Linux, where CI runs, a test requires the add-on.
import { execFileSync } from 'node:child_process';
import { mkdirSync, renameSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const pkg = path.resolve(import.meta.dirname, '..');
const supported = ['linux', 'darwin', 'freebsd'];
if (!supported.includes(process.platform)) {
  console.log(`dirstat: no native add-on for ${process.platform}; the JavaScript lister is used`);
  process.exit(0);
}
const { include_dir: include } = createRequire(import.meta.url)('node-api-headers');
const outDir = path.join(pkg, 'prebuilds', `${process.platform}-${process.arch}`);
mkdirSync(outDir, { recursive: true });
const out = path.join(outDir, 'dirstat.node');
const cc = process.env.CC || 'cc';
const args = ['-O2', '-fPIC', '-shared', '-std=gnu11', '-pthread', '-Wall', '-Wextra', '-Werror', `-I${include}`];
// macOS resolves the napi_* symbols from the node binary at load time
if (process.platform === 'darwin') args.push('-undefined', 'dynamic_lookup');
try {
  execFileSync(cc, [...args, '-o', `${out}.tmp`, path.join(pkg, 'native', 'dirstat.c')], { stdio: 'inherit' });
  renameSync(`${out}.tmp`, out); // a failed build never leaves half a binary to load
} catch (e) {
  const why =
    e && typeof e === 'object' && 'code' in e && e.code === 'ENOENT' ? `no C compiler (${cc})` : 'the compile failed';
  console.warn(`dirstat: ${why}; the JavaScript lister is used (slower status on large trees)`);
}
