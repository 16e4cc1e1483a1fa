import { readdirSync, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import SSHConfig, { type Directive, type Line, type Section } from 'ssh-config';
import { ConfigError } from '@dsg/contracts';

/** OpenSSH's READCONF_MAX_DEPTH: Include nested deeper than this is an error. */
export const MAX_INCLUDE_DEPTH = 16;

function isDirective(l: Line): l is Directive {
  return 'param' in l;
}

function isSection(l: Line): l is Section {
  return isDirective(l) && 'config' in l && /^(host|match)$/i.test(l.param);
}

function includeOf(l: Line): Directive | null {
  return isDirective(l) && l.param.toLowerCase() === 'include' ? l : null;
}

function values(d: Directive): string[] {
  return typeof d.value === 'string' ? [d.value] : d.value.map((v) => v.val);
}

const WILD = /[*?[]/;

/** glob(3) on one pattern component: `*`, `?`, `[…]`; a leading `.` only matched explicitly. */
function componentRegExp(p: string): RegExp {
  let re = '';
  for (let i = 0; i < p.length; i++) {
    const c = p[i]!;
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = p.indexOf(']', i + 2);
      if (end < 0) re += '\\[';
      else {
        const body = p.slice(i + 1, end);
        const negated = body.startsWith('!');
        re += `[${negated ? '^' : ''}${(negated ? body.slice(1) : body).replace(/[\\^]/g, '\\$&')}]`;
        i = end;
      }
    } else re += c.replace(/[.+^${}()|\\\]]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** The existing files a glob pattern (absolute) names, sorted like glob(3). */
export function globFiles(pattern: string): string[] {
  const parts = pattern.split('/').filter((p, i) => p !== '' || i === 0);
  let found = [parts[0] === '' ? '/' : parts[0]!];
  for (const part of parts.slice(1)) {
    const next: string[] = [];
    for (const dir of found) {
      if (!WILD.test(part)) {
        next.push(join(dir, part));
        continue;
      }
      let names: string[];
      try {
        names = readdirSync(dir);
      } catch {
        continue;
      }
      const re = componentRegExp(part);
      for (const n of names.sort())
        if ((!n.startsWith('.') || part.startsWith('.')) && re.test(n)) next.push(join(dir, n));
    }
    found = next;
  }
  return found.filter(isFile);
}

function isFile(f: string): boolean {
  try {
    return statSync(f).isFile();
  } catch {
    return false;
  }
}

/** An Include argument as OpenSSH reads it from a user config: `~` expanded, relative to ~/.ssh. */
function includePath(arg: string): string {
  const home = homedir();
  const p = arg.replace(/^~(?=\/|$)/, home);
  return isAbsolute(p) ? p : resolve(home, '.ssh', p);
}

/** Whether a Host/Match block applies to `host` (its header alone, computed by the same library). */
function blockMatches(section: Section, host: string): boolean {
  const probe = new SSHConfig();
  probe.push({ ...section, config: SSHConfig.parse('  DsgIncludeProbe yes\n') });
  return probe.compute(host, { ignoreCase: true })['dsgincludeprobe'] === 'yes';
}

/** What reading one config (with its includes) for one host needs to carry. */
interface Ctx {
  host: string;
  /** raw ProxyCommand lines, by placeholder index */
  proxyCommands: string[];
}

const PROXY_LINE = /^([ \t]*ProxyCommand)([ \t]*=[ \t]*|[ \t]+)(.*?)[ \t\r]*$/gim;
const PROXY_PLACEHOLDER = /^dsg-proxycommand-(\d+)$/;

/**
 * The config text with every ProxyCommand's value replaced by a placeholder.
 * OpenSSH takes the rest of a ProxyCommand line verbatim, for the shell; the
 * parser would split it on spaces and `=` and re-quote it, which breaks
 * quoting inside the command.
 */
function protectProxyCommands(text: string, ctx: Ctx): string {
  return text.replace(PROXY_LINE, (_, kw: string, sep: string, value: string) => {
    ctx.proxyCommands.push(value);
    return `${kw}${sep}dsg-proxycommand-${ctx.proxyCommands.length - 1}`;
  });
}

function readConfig(file: string, chain: readonly string[], ctx: Ctx): SSHConfig {
  try {
    return SSHConfig.parse(protectProxyCommands(readFileSync(file, 'utf8'), ctx));
  } catch (e) {
    const via = chain.length > 1 ? ` (included from ${chain.slice(0, -1).join(' → ')})` : '';
    throw new ConfigError(
      `cannot read ssh config ${file}${via}: ${(e as Error).message}`,
      { file },
      { cause: e, recoveryHint: 'Fix or remove the file, or the Include line that names it.' },
    );
  }
}

function expandInclude(d: Directive, ctx: Ctx, chain: readonly string[]): Line[] {
  if (chain.length > MAX_INCLUDE_DEPTH) {
    throw new ConfigError(
      `ssh config Include nested more than ${MAX_INCLUDE_DEPTH} deep: ${chain.join(' → ')}`,
      { file: chain[0]!, field: 'Include' },
      {
        recoveryHint: 'OpenSSH stops at the same depth; flatten the Include chain.',
      },
    );
  }
  const out: Line[] = [];
  for (const arg of values(d)) {
    const pattern = includePath(arg);
    const files = WILD.test(pattern) ? globFiles(pattern) : [pattern];
    for (const f of files) {
      if (chain.includes(f)) {
        throw new ConfigError(
          `ssh config Include cycle: ${[...chain, f].join(' → ')}`,
          { file: chain.at(-1)!, field: 'Include' },
          {
            recoveryHint: 'Remove the Include line that leads back to a file already being read.',
          },
        );
      }
      if (!isFile(f)) continue; // a file that does not exist is skipped, as OpenSSH does
      out.push(...flatten(readConfig(f, [...chain, f], ctx), ctx, [...chain, f]));
    }
  }
  return out;
}

/**
 * One file's lines with every Include replaced by what it names, for
 * `host`: at the top level the included lines are spliced in place; inside
 * a Host/Match block that applies to `host`, the block is closed, the
 * included lines follow (their own blocks keep their own conditions), and
 * the rest of the block reopens under the same header; inside a block that
 * does not apply, nothing included can apply (OpenSSH's NEVERMATCH).
 */
function flatten(config: SSHConfig, ctx: Ctx, chain: readonly string[]): Line[] {
  const out: Line[] = [];
  for (const line of config) {
    const inc = includeOf(line);
    if (inc) {
      out.push(...expandInclude(inc, ctx, chain));
    } else if (isSection(line) && line.config.some((l) => includeOf(l) !== null)) {
      const applies = blockMatches(line, ctx.host);
      let part = new SSHConfig();
      for (const sub of line.config) {
        const subInc = includeOf(sub);
        if (!subInc) {
          part.push(sub);
          continue;
        }
        const included = expandInclude(subInc, ctx, chain); // read (and checked) even when it cannot apply
        if (!applies) continue;
        out.push({ ...line, config: part }, ...included);
        part = new SSHConfig();
      }
      out.push({ ...line, config: part });
    } else out.push(line);
  }
  return out;
}

/** A computed ssh_config: option → value (lowercase keys), and the raw ProxyCommand. */
export interface ComputedSshConfig {
  options: Record<string, string | string[]>;
  /** the ProxyCommand line that applies, verbatim; undefined when none is set */
  proxyCommand: string | undefined;
}

/**
 * The options `file` gives `host` (keywords case-insensitive, as in
 * OpenSSH), with its Include directives followed: relative paths from
 * ~/.ssh, `~`, globs sorted; at most `MAX_INCLUDE_DEPTH` deep; a cycle is an
 * error. A missing `file` is an empty config.
 */
export function computeSshConfig(file: string, host: string): ComputedSshConfig {
  const root = resolve(file);
  const ctx: Ctx = { host, proxyCommands: [] };
  const config = new SSHConfig();
  if (isFile(root)) for (const l of flatten(readConfig(root, [root], ctx), ctx, [root])) config.push(l);
  const options = config.compute(host, { ignoreCase: true });
  const raw = options['proxycommand'];
  const placeholder = PROXY_PLACEHOLDER.exec(Array.isArray(raw) ? (raw[0] ?? '') : (raw ?? ''));
  return { options, proxyCommand: placeholder ? ctx.proxyCommands[Number(placeholder[1])] : undefined };
}
