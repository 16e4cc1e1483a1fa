/**
 * A `.dsgconfig.yml` that arrives from the repository (a teammate's edit) is
 * trusted for nothing by itself: its connection block is never used (the
 * local `.dsg/config.local.yml` is; a difference is reported once), and a
 * change of what is synced — data dirs, ignore rules — is shown as a diff
 * and takes effect only with the user's consent (`dsg sync --accept-config`).
 */
import { ConfigError, ValidationError } from '@dsg/contracts';
import type { Ctx } from '../context.js';
import {
  DEFAULT_DATA_DIRS,
  DEFAULT_IGNORE,
  LOCAL_CONFIG_FILE,
  PROJECT_CONFIG_FILE,
  connectionDifferences,
  connectionKey,
  ignoredConnectionNotice,
  isLegacy,
  parseProjectSource,
  writeLocalConfig,
  type LoadedProject,
} from '../config/project.js';
import { parseYamlText } from '../config/yaml-file.js';

export interface ListDiff {
  added: string[];
  removed: string[];
}

/** What an incoming .dsgconfig.yml would change. */
export interface ConfigChange {
  dataDirs: ListDiff;
  ignore: { names: ListDiff; suffixes: ListDiff; paths: ListDiff };
  /** true when data dirs or ignore rules differ (needs --accept-config) */
  scopeChanged: boolean;
  /** connection keys (name, repository.*) it names differently from the local settings: ignored */
  connectionIgnored: string[];
  /** why the incoming file is refused whatever the consent (a hidden data dir, wrong types), or null */
  invalid: string | null;
}

interface Scope {
  data_dirs: string[];
  ignore: { names: string[]; suffixes: string[]; paths: string[] };
}

const strings = (v: unknown, def: string[]): string[] =>
  Array.isArray(v) ? v.map((x) => (typeof x === 'string' ? x : JSON.stringify(x))) : def;

/** data_dirs and ignore read loosely, for showing what an invalid file would have changed. */
function looseScope(value: unknown): Scope {
  const v = (value && typeof value === 'object' ? value : {}) as Record<string, unknown>;
  const body =
    isLegacy(v) && v['project'] && typeof v['project'] === 'object'
      ? { ...(v['project'] as Record<string, unknown>), ...v }
      : v;
  const ig = (body['ignore'] && typeof body['ignore'] === 'object' ? body['ignore'] : {}) as Record<string, unknown>;
  return {
    data_dirs: strings(body['data_dirs'], DEFAULT_DATA_DIRS),
    ignore: {
      names: strings(ig['names'], DEFAULT_IGNORE.names),
      suffixes: strings(ig['suffixes'], DEFAULT_IGNORE.suffixes),
      paths: strings(ig['paths'], []),
    },
  };
}

function listDiff(from: string[], to: string[]): ListDiff {
  const a = new Set(from);
  const b = new Set(to);
  return { added: [...b].filter((x) => !a.has(x)), removed: [...a].filter((x) => !b.has(x)) };
}

const changed = (d: ListDiff): boolean => d.added.length > 0 || d.removed.length > 0;

/** Compare the repository's .dsgconfig.yml (bytes) with this working copy's. Throws ConfigError for bytes that are not YAML. */
export function analyseIncoming(project: LoadedProject, bytes: Uint8Array): ConfigChange {
  const file = `repository:${PROJECT_CONFIG_FILE}`;
  const src = parseYamlText(Buffer.from(bytes).toString('utf8'), file);
  let scope: Scope;
  let invalid: string | null = null;
  let connectionIgnored: string[] = [];
  try {
    const p = parseProjectSource(src);
    scope = p.config;
    connectionIgnored = connectionDifferences(p.config, project.config);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    invalid = e.message;
    scope = looseScope(src.value);
  }
  const local = project.shared;
  const dataDirs = listDiff(local.data_dirs, scope.data_dirs);
  const ignore = {
    names: listDiff(local.ignore.names, scope.ignore.names),
    suffixes: listDiff(local.ignore.suffixes, scope.ignore.suffixes),
    paths: listDiff(local.ignore.paths, scope.ignore.paths),
  };
  const scopeChanged = changed(dataDirs) || changed(ignore.names) || changed(ignore.suffixes) || changed(ignore.paths);
  return { dataDirs, ignore, scopeChanged, connectionIgnored, invalid };
}

/** The diff as lines: `data dirs: + .git, - frozen`. */
export function describeChange(c: ConfigChange): string[] {
  const out: string[] = [];
  const line = (what: string, d: ListDiff): void => {
    if (!changed(d)) return;
    out.push(`${what}: ${[...d.added.map((x) => `+ ${x}`), ...d.removed.map((x) => `- ${x}`)].join(', ')}`);
  };
  line('data dirs', c.dataDirs);
  line('ignore names', c.ignore.names);
  line('ignore suffixes', c.ignore.suffixes);
  line('ignore paths', c.ignore.paths);
  return out;
}

/** The JSON form (status, sync, the refusal's details). */
export function changeDoc(c: ConfigChange): {
  dataDirs: ListDiff;
  ignore: ConfigChange['ignore'];
  scopeChanged: boolean;
  connectionIgnored: string[];
  invalid: string | null;
} {
  return {
    dataDirs: c.dataDirs,
    ignore: c.ignore,
    scopeChanged: c.scopeChanged,
    connectionIgnored: c.connectionIgnored,
    invalid: c.invalid,
  };
}

/** Refused: the repository's .dsgconfig.yml changes what is synced, and the user has not accepted it. */
export class ConfigChangeError extends ValidationError {
  constructor(readonly change: ConfigChange) {
    const details = {
      file: `repository:${PROJECT_CONFIG_FILE}`,
      field: 'data_dirs/ignore',
      configChange: changeDoc(change),
    };
    super(
      `the repository's ${PROJECT_CONFIG_FILE} changes what is synced (${describeChange(change).join('; ')}); nothing was changed`,
      details,
      {
        code: 'CONFIG_CHANGE',
        recoveryHint:
          'Review the change (a teammate edited .dsgconfig.yml); if you agree, run `dsg sync --accept-config` (the new scope applies from the next sync).',
      },
    );
  }
}

/** Report an ignored connection block once: remembered in .dsg/config.local.yml. */
async function reportConnection(ctx: Ctx, project: LoadedProject, keys: string[], bytes: Uint8Array): Promise<void> {
  if (!keys.length) return;
  const src = parseYamlText(Buffer.from(bytes).toString('utf8'), `repository:${PROJECT_CONFIG_FILE}`);
  const key = connectionKey(parseProjectSource(src).config);
  const local = project.connection.local ?? { name: project.config.name, repository: project.config.repository };
  if (local.ignored_shared_connection === key || ctx.out.opts.quiet) return; // under -q: told by the next command that is not quiet
  ctx.out.warn(ignoredConnectionNotice(keys));
  const next = { ...local, ignored_shared_connection: key };
  await writeLocalConfig(project.root, next);
  project.connection.local = next;
}

/**
 * The sync's check of the repository's .dsgconfig.yml before it is
 * downloaded over the local one (throw: the sync is refused, nothing
 * changed). `accepted` receives the change a --accept-config sync takes.
 */
export function incomingConfigCheck(
  ctx: Ctx,
  project: LoadedProject,
  o: { acceptConfig: boolean; accepted: (c: ConfigChange) => void },
): (bytes: Uint8Array) => Promise<void> {
  return async (bytes) => {
    let c: ConfigChange;
    try {
      c = analyseIncoming(project, bytes);
    } catch (e) {
      throw invalidIncoming(e);
    }
    if (c.scopeChanged) {
      ctx.out.warn(`the repository's ${PROJECT_CONFIG_FILE} changes what is synced:`);
      for (const l of describeChange(c)) ctx.out.warn(`  ${l}`);
    }
    if (c.invalid !== null)
      throw invalidIncoming(new ConfigError(c.invalid, { file: `repository:${PROJECT_CONFIG_FILE}` }));
    await reportConnection(ctx, project, c.connectionIgnored, bytes);
    if (c.scopeChanged && !o.acceptConfig) throw new ConfigChangeError(c);
    if (c.scopeChanged) {
      ctx.out.warn(
        `accepted (--accept-config): the new data dirs and ignore rules apply from the next sync; connection settings stay those of ${LOCAL_CONFIG_FILE}`,
      );
      o.accepted(c);
    }
  };
}

/** A repository .dsgconfig.yml this dsg cannot take: refused before it is written into the working copy. */
export function invalidIncoming(e: unknown): unknown {
  if (!(e instanceof ConfigError)) return e;
  const file = `repository:${PROJECT_CONFIG_FILE}`;
  return new ConfigError(
    `the repository's ${PROJECT_CONFIG_FILE} is invalid: ${e.message}`,
    { ...e.details, file },
    {
      recoveryHint: `Nothing was changed. Put a valid ${PROJECT_CONFIG_FILE} back into the repository: edit yours in a working copy and sync it (keep yours: resolution L).`,
      cause: e,
    },
  );
}
