// Compiles native/dirstat.c into prebuilds/<platform>-<arch>/dirstat.node
// with the system C compiler against the Node-API headers (one binary for
// every Node version with Node-API 8: 20 and 24 load the same file). Plain
// `cc` rather than node-gyp: one C file, no Python/gyp toolchain, no
// download of Node's full headers. On Linux a build without the add-on
// fails (unless DSG_DIRSTAT=js); elsewhere, without a compiler or on a
// platform this file is not written for, the package falls back to
// JavaScript and says so here.
import { execFileSync } from 'node:child_process';
import { mkdirSync, renameSync, rmSync } from 'node:fs';
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
// an add-on from an earlier build never stands in for this one: a failed build leaves none
rmSync(out, { force: true });
// Linux (where CI and most servers run) must get the add-on: a build without it fails there,
// so no cache keeps a build that has none; DSG_DIRSTAT=js at build time opts out on purpose
const required = process.platform === 'linux' && process.env.DSG_DIRSTAT !== 'js';
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
  if (required) {
    console.error(`dirstat: ${why}`);
    console.error('hint: install a C compiler (Debian: apt install gcc), or build with DSG_DIRSTAT=js to ship none');
    process.exit(1);
  }
  console.warn(`dirstat: ${why}; the JavaScript lister is used (slower status on large trees)`);
}
