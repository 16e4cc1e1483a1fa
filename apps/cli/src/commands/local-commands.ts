import { readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { ConfigError, snapshotNumber, type RepositorySummary } from '@dsg/contracts';
import { hashFile, readManifestFile, validateName } from '@dsg/manifest';
import { pruneBackups } from '@dsg/client-fs';
import type { Ctx } from '../context.js';
import { shownTime } from '../output/time.js';
import {
  findProjectRoot,
  loadProjectConfig,
  LOCAL_CONFIG_FILE,
  PERSONAL_KEYS,
  PROJECT_CONFIG_FILE,
  repositoryYaml,
  requireProject,
  type RepositoryConfig,
} from '../config/project.js';
import { loadUserConfig, requireUserConfig, type UserConfig } from '../config/user.js';
import { effectiveSettings, showSource, showValue, SOURCE_LABELS, SOURCES } from '../config/effective.js';
import { describeFix, movePersonalKeys, type PersonalKeysFix } from '../config/fix-personal.js';
import { connect, connectHost, recoverProject } from '../connect.js';
import { loadProject, reportNotices } from '../session.js';
import {
  cleanSchema,
  listFilesSchema,
  listReposSchema,
  validateConfigSchema,
  validateFileSchema,
} from '../output/json-schemas.js';
import { EXIT, UsageError } from '../output/errors.js';
import { repoRelative } from './paths.js';
import { sshFields, sudoField, type SshOptions } from './ssh-options.js';
import { LAST_SYNC } from '@dsg/coordinator';

export async function validateConfigCommand(
  ctx: Ctx,
  o: { backend?: boolean; fixLegacy?: boolean; fix?: boolean },
): Promise<number> {
  const root = await findProjectRoot(ctx.cwd);
  const user = await loadUserConfig(ctx.env);
  let project = root ? await reportNotices(ctx, await loadProjectConfig(root)) : null;
  let fix: PersonalKeysFix | null = null;
  if (o.fix && project) {
    fix = await movePersonalKeys(project, user?.config ?? null);
    if (fix.moved.length + fix.kept.length + fix.dropped.length > 0)
      project = await reportNotices(ctx, await loadProjectConfig(project.root));
  }
  const personal = project
    ? PERSONAL_KEYS.filter((k) => (project.shared.repository as Record<string, unknown>)[k] !== undefined)
    : [];
  if (personal.length) {
    const used = project?.connection.source === 'shared' && personal.some((k) => k !== 'agent');
    ctx.out.warn(
      `${PROJECT_CONFIG_FILE} has per-person keys (${personal.map((k) => `repository.${k}`).join(', ')}); ${used ? 'they reach every teammate with the file' : `they are not used — this copy's are in ${LOCAL_CONFIG_FILE}`}. \`dsg validate-config --fix\` moves them to ${LOCAL_CONFIG_FILE}.`,
    );
  }
  let fixed = false;
  if (o.fixLegacy && project?.legacy) {
    const doc = {
      name: project.shared.name,
      repository: repositoryYaml(project.shared.repository),
      data_dirs: project.shared.data_dirs,
      ignore: project.shared.ignore,
    };
    await writeFile(`${project.file}.legacy`, await import('node:fs/promises').then((f) => f.readFile(project.file)));
    await writeFile(project.file, stringify(doc));
    fixed = true;
  }
  let backend = { checked: false, ok: null as boolean | null, detail: null as string | null };
  if (o.backend !== false && project) {
    const conn = await connect(ctx, project.config.repository, project.config.name, user?.config ?? null, {
      root: project.root,
      dataDirs: project.config.data_dirs,
    });
    try {
      const exists = await conn.client.exists();
      backend = {
        checked: true,
        ok: true,
        detail: `${conn.where}: ${exists ? 'repository exists' : 'reachable; repository not created yet (dsg init)'}`,
      };
    } finally {
      await conn.close();
    }
  }
  const ok = project !== null && user !== null;
  const settings = effectiveSettings(project, user, ctx.env);
  ctx.out.result(
    validateConfigSchema,
    {
      command: 'validate-config',
      ok,
      projectFile: project?.file ?? null,
      userFile: user?.file ?? null,
      legacy: project?.legacy ?? false,
      fixedLegacy: fixed,
      backend,
      connection: project
        ? {
            file: project.connection.source === 'shared' ? project.file : project.connection.file,
            source: project.connection.source,
          }
        : null,
      precedence: SOURCES.map((x) => SOURCE_LABELS[x]),
      settings,
      fix,
    },
    (d) => {
      const c = ctx.out.c;
      ctx.out.line(
        `project config: ${d.projectFile ? `${c.green('ok')} ${d.projectFile}${d.legacy ? ' (legacy form; --fix-legacy rewrites it)' : ''}` : c.red('none found')}`,
      );
      if (d.fixedLegacy)
        ctx.out.line(`  rewritten in the current form (old file kept as ${PROJECT_CONFIG_FILE}.legacy)`);
      if (d.connection) {
        const why =
          d.connection.source === 'shared'
            ? ' (this copy never synced; after its first sync dsg pins it into .dsg/config.local.yml)'
            : ` (local; the repository block of ${PROJECT_CONFIG_FILE} is not used to connect)`;
        ctx.out.line(`connection:     ${c.green('ok')} ${d.connection.file}${why}`);
      }
      ctx.out.line(`user config:    ${d.userFile ? `${c.green('ok')} ${d.userFile}` : c.red('none found')}`);
      ctx.out.line(
        `backend:        ${d.backend.checked ? `${c.green('ok')} ${d.backend.detail ?? ''}` : 'not checked'}`,
      );
      if (fix) {
        const lines = describeFix(fix);
        for (const l of lines) ctx.out.line(`fix:            ${l}`);
        if (lines.length === 0)
          ctx.out.line(`fix:            nothing to move (${PROJECT_CONFIG_FILE} has no per-person keys)`);
      }
      if (ctx.out.opts.verbose) {
        ctx.out.line(`settings (highest precedence first: ${d.precedence.join(' > ')}):`);
        const w = Math.max(...d.settings.map((x) => x.key.length));
        for (const x of d.settings) {
          ctx.out.line(`  ${x.key.padEnd(w)}  ${showValue(x.value)}  ${c.dim(`(${showSource(x)})`)}`);
          for (const s of x.shadowed)
            ctx.out.line(
              `  ${''.padEnd(w)}  ${c.dim(`shadowed: ${showValue(s.value)} (${showSource(s)}${s.note ? `; ${s.note}` : ''})`)}`,
            );
        }
      }
    },
  );
  if (!project) await requireProject(ctx.cwd); // throws the documented ConfigError (exit 2)
  if (!user) await requireUserConfig(ctx.env);
  return EXIT.ok;
}

export async function validateFileCommand(ctx: Ctx, file: string): Promise<number> {
  const project = await loadProject(ctx);
  const rel = repoRelative(project.root, ctx.cwd, file);
  const nameProblem = validateName(rel);
  const cache = await readManifestFile(path.join(project.root, LAST_SYNC));
  const entry = cache?.entries.get(rel);
  const hash = await hashFile(path.join(project.root, rel)).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return null;
    throw e;
  });
  const manifestHash = entry?.type === 'file' ? entry.hash : null;
  const ok = nameProblem === null && hash !== null && (manifestHash === null || manifestHash === hash);
  ctx.out.result(
    validateFileSchema,
    { command: 'validate-file', path: rel, ok, nameProblem, inManifest: entry !== undefined, hash, manifestHash },
    (d) => {
      const c = ctx.out.c;
      ctx.out.line(`name:     ${d.nameProblem ? c.red(`refused: ${d.nameProblem}`) : c.green('ok')}`);
      ctx.out.line(`file:     ${d.hash ? d.hash : c.red('missing')}`);
      ctx.out.line(
        `manifest: ${d.inManifest ? (d.manifestHash === d.hash ? c.green(`same hash ${d.manifestHash}`) : c.yellow(`differs (last sync: ${d.manifestHash ?? 'link'})`)) : 'not in the last sync'}`,
      );
    },
  );
  return ok ? EXIT.ok : EXIT.error;
}

export async function listFilesCommand(ctx: Ctx, o: { path?: string }): Promise<void> {
  const project = await loadProject(ctx);
  await recoverProject(ctx, project.root, null).catch((e: unknown) =>
    ctx.out.log(`recovery needs the repository: ${String(e)}`),
  );
  const m = await readManifestFile(path.join(project.root, LAST_SYNC));
  const prefix = o.path ? repoRelative(project.root, ctx.cwd, o.path) : null;
  const entries = [...(m?.entries.values() ?? [])]
    .filter((e) => (prefix ? e.path === prefix || e.path.startsWith(prefix + '/') : true))
    .map((e) =>
      e.type === 'file'
        ? {
            path: e.path,
            type: e.type,
            size: e.filesize,
            mtime: e.mtime,
            user: e.user,
            hash: e.hash || null,
            reference: null,
          }
        : { path: e.path, type: e.type, size: null, mtime: null, user: e.user, hash: null, reference: e.reference },
    );
  ctx.out.result(
    listFilesSchema,
    { command: 'list-files', snapshotId: m?.metadata?.snapshot_id ?? null, entries },
    (d) => {
      const w = Math.max(4, ...d.entries.map((e) => String(e.size ?? '').length));
      for (const e of d.entries) {
        const what = e.type === 'link' ? `-> ${e.reference}` : '';
        ctx.out.line(
          `${String(e.size ?? '-').padStart(w)}  ${e.mtime ? shownTime(e.mtime) : '-'.padEnd(25)}  ${ctx.out.c.cyan(e.user)}  ${e.path} ${what}`.trimEnd(),
        );
      }
      if (!m) ctx.out.line('no last sync in this project (run `dsg sync` or `dsg clone`)');
    },
  );
}

export async function listReposCommand(
  ctx: Ctx,
  o: { host?: string; path?: string; type?: 'zfs' | 'posix'; pool?: string } & SshOptions,
): Promise<void> {
  const user = await loadUserConfig(ctx.env);
  const root = await findProjectRoot(ctx.cwd);
  const project = root ? await reportNotices(ctx, await loadProjectConfig(root)) : null;
  let repo: RepositoryConfig;
  const host = o.host ?? project?.config.repository.host ?? user?.config.default_host;
  const where = o.path ?? (project ? undefined : user?.config.default_project_path);
  if (where || o.pool) {
    if (!where) throw new UsageError("--pool needs --path (the pool dataset's mountpoint)");
    const type = o.type ?? (o.pool ? 'zfs' : 'posix');
    if (type === 'zfs' && !o.pool) throw new UsageError('list-repos on zfs needs --pool P as well as --path');
    repo =
      type === 'zfs'
        ? { type, host, ...sshFields(o), pool: o.pool!, mountpoint: path.resolve(where), ...sudoField(type, o) }
        : { type, host, ...sshFields(o), root: path.resolve(where), ...sudoField(type, o) };
  } else if (project) {
    repo = {
      ...project.config.repository,
      ...(o.host ? { host: o.host } : {}),
      ...sshFields(o),
      ...sudoField(project.config.repository.type, o),
    };
  } else {
    throw new ConfigError(
      'list-repos does not know where to look',
      {},
      {
        recoveryHint:
          'Pass --path <dir> (and --host), set default_project_path in your user config, or run it inside a project.',
      },
    );
  }
  const conn = await connectHost(ctx, repo, user?.config ?? null);
  let summaries: RepositorySummary[];
  try {
    summaries = [...(await conn.client.repositorySummaries())].sort((a, b) => a.name.localeCompare(b.name));
  } finally {
    await conn.close();
  }
  const replicas = await replicaStates(ctx, repo, summaries, user?.config ?? null);
  ctx.out.result(
    listReposSchema,
    {
      command: 'list-repos',
      host: repo.host ?? 'localhost',
      type: repo.type,
      repositories: summaries.map((r) => r.name),
      replicas,
    },
    (d) => {
      const byName = new Map(d.replicas.map((r) => [r.name, r]));
      for (const n of d.repositories) {
        const r = byName.get(n);
        ctx.out.line(r ? `${n}  ${replicaText(r)}` : n);
      }
      if (d.repositories.length === 0) ctx.out.line(`no repositories on ${d.host}`);
    },
  );
}

/** A replica as `dsg list-repos` reports it (--json `replicas`). */
interface ReplicaState {
  name: string;
  replicaOf: string;
  head: string | null;
  primaryHead: string | null;
  /** snapshots the replica lacks; null when either head is unknown */
  behind: number | null;
  /** why the primary could not be asked; null when it answered */
  primaryError: string | null;
}

function replicaText(r: ReplicaState): string {
  const at = `replica of ${r.replicaOf}, at ${r.head ?? 'no snapshot'}`;
  if (r.primaryError !== null) return `${at}; primary unreachable (${r.primaryError})`;
  if (r.primaryHead === null) return `${at}; the primary has no snapshot there`;
  const lag = r.behind === null ? '' : r.behind === 0 ? ' (up to date)' : ` (${r.behind} behind)`;
  return `${at}; primary at ${r.primaryHead}${lag}`;
}

/**
 * For every replica in `summaries`, its primary's head: the marker
 * (parseReplicaMarker) names the host and dataset or directory, and the
 * primary is asked with the same ssh settings as the replica host (port,
 * ssh user, agent, key), one connection per primary parent dataset. A
 * primary that cannot be reached is reported, never fatal.
 */
async function replicaStates(
  ctx: Ctx,
  replicaHost: RepositoryConfig,
  summaries: RepositorySummary[],
  user: UserConfig | null,
): Promise<ReplicaState[]> {
  const groups = new Map<
    string,
    { kind: 'zfs' | 'posix'; host: string; parent: string; replicas: RepositorySummary[] }
  >();
  const states: ReplicaState[] = [];
  for (const r of summaries) {
    if (typeof r.replicaOf !== 'string') continue;
    const m = parseReplicaMarker(r.replicaOf);
    if (!m) {
      states.push(
        state(
          r,
          null,
          `its marker ${JSON.stringify(r.replicaOf.slice(0, 200))} is not <host>:<dataset> or <host>:<path>`,
        ),
      );
      continue;
    }
    const key = `${m.kind}\0${m.host}\0${m.parent}`;
    const g = groups.get(key) ?? { kind: m.kind, host: m.host, parent: m.parent, replicas: [] };
    g.replicas.push(r);
    groups.set(key, g);
  }
  for (const g of groups.values()) {
    let heads: Map<string, string | null> | null = null;
    let error: string | null = null;
    try {
      const primary: RepositoryConfig =
        g.kind === 'zfs'
          ? {
              type: 'zfs',
              host: g.host,
              pool: g.parent,
              // listing reads datasets only; the agent wants a mountpoint, the replica host's stands in
              mountpoint: replicaHost.type === 'zfs' ? replicaHost.mountpoint : '/',
              ...pickSsh(replicaHost),
            }
          : { type: 'posix', host: g.host, root: g.parent, ...pickSsh(replicaHost) };
      const conn = await connectHost(ctx, primary, user);
      try {
        heads = new Map((await conn.client.repositorySummaries()).map((x) => [x.name, x.head ?? null]));
      } finally {
        await conn.close();
      }
    } catch (e) {
      error = (e as Error).message;
    }
    for (const r of g.replicas) {
      const primaryName = r.replicaOf!.slice(r.replicaOf!.lastIndexOf('/') + 1);
      if (heads && !heads.has(primaryName))
        states.push(state(r, null, `no repository ${primaryName} under ${g.parent} on ${g.host}`));
      else states.push(state(r, heads?.get(primaryName) ?? null, error));
    }
  }
  return states.sort((a, b) => a.name.localeCompare(b.name));
}

/**
 * A replica marker, the replica host's word: `<host>:<pool>/<name>` (ZFS,
 * `dsg:replica-of`) or `<host>:/<parent>/<name>` (posix, `replica-of`).
 * Only a plain host name (never an ssh option, `-…`) and a parent without
 * `.`/`..` steps are taken; anything else is null.
 */
export function parseReplicaMarker(
  marker: string,
): { kind: 'zfs' | 'posix'; host: string; parent: string; name: string } | null {
  const host = '([A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)';
  const zfs = new RegExp(`^${host}:([A-Za-z0-9][\\w.:-]*(?:/[\\w.:-]+)*)/([A-Za-z0-9][\\w.-]*)$`).exec(marker);
  if (zfs) return { kind: 'zfs', host: zfs[1]!, parent: zfs[2]!, name: zfs[3]! };
  const posix = new RegExp(`^${host}:((?:/[\\w.-]+)*)/([A-Za-z0-9][\\w.-]*)$`).exec(marker);
  if (!posix || posix[2]!.split('/').some((step) => step === '.' || step === '..')) return null;
  return { kind: 'posix', host: posix[1]!, parent: posix[2] || '/', name: posix[3]! };
}

function state(r: RepositorySummary, primaryHead: string | null, primaryError: string | null): ReplicaState {
  const head = r.head ?? null;
  const a = snapshotNumber(head);
  const b = snapshotNumber(primaryHead);
  return {
    name: r.name,
    replicaOf: r.replicaOf!,
    head,
    primaryHead: primaryError === null ? primaryHead : null,
    behind: primaryError === null && b !== null ? Math.max(0, b - (a ?? 0)) : null,
    primaryError,
  };
}

/** The ssh settings of the replica host's config, for its primary: same port, login, agent (and sudo for zfs). */
function pickSsh(c: RepositoryConfig): { port?: number; user?: string; agent?: string[]; sudo?: boolean } {
  return {
    ...(c.port !== undefined ? { port: c.port } : {}),
    ...(c.user !== undefined ? { user: c.user } : {}),
    ...(c.agent !== undefined ? { agent: c.agent } : {}),
    ...(c.type === 'zfs' && c.sudo !== undefined ? { sudo: c.sudo } : {}),
  };
}

type Target = 'all' | 'staging' | 'backups' | 'orphans';

export async function cleanCommand(
  ctx: Ctx,
  o: { target?: Target; dryRun?: boolean; force?: boolean; maxAgeDays?: string },
): Promise<void> {
  const target: Target = o.target ?? 'all';
  const dryRun = o.dryRun !== false;
  const project = await loadProject(ctx);
  const user = await loadUserConfig(ctx.env);
  const items: { kind: string; path: string }[] = [];
  const leftovers: { name: string; error: string }[] = [];
  const conn = await connect(ctx, project.config.repository, project.config.name, user?.config ?? null, {
    root: project.root,
    dataDirs: project.config.data_dirs,
  });
  try {
    // Recovery first: an interrupted transaction is finished or undone, never just deleted.
    if (!dryRun) await recoverProject(ctx, project.root, conn);
    const dsg = path.join(project.root, '.dsg');
    if (target === 'all' || target === 'staging') {
      for (const d of await readdir(path.join(dsg, 'staging')).catch(() => [] as string[])) {
        const p = path.join(dsg, 'staging', d);
        items.push({ kind: 'staging', path: p });
        if (!dryRun) await rm(p, { recursive: true, force: true });
      }
    }
    if (target === 'all' || target === 'backups') {
      // backups older than --max-age-days (default 30; --force: all of them)
      const days = o.force ? 0 : Number(o.maxAgeDays ?? 30);
      const r = await pruneBackups(project.root, days * 86_400_000, { dryRun });
      for (const p of r.removed) items.push({ kind: 'backup', path: p });
      leftovers.push(...r.leftovers);
    }
    if ((target === 'all' || target === 'orphans') && !dryRun) {
      // the repository's recovery runs under its lock, as a sync's does: a sync in progress is never cleaned away
      await conn.client.lock({
        user: user?.config.user_id ?? 'unknown',
        host: os.hostname(),
        pid: process.pid,
        since: new Date().toISOString(),
      });
      try {
        const r = await conn.client.recover();
        for (const p of r.removed) items.push({ kind: 'orphan', path: p });
        leftovers.push(...r.leftovers);
      } finally {
        await conn.client.unlock();
      }
    }
  } finally {
    await conn.close();
  }
  ctx.out.result(cleanSchema, { command: 'clean', dryRun, target, items, leftovers }, (d) => {
    for (const i of d.items) ctx.out.line(`${d.dryRun ? 'would remove' : 'removed'} ${i.kind}: ${i.path}`);
    for (const l of d.leftovers) ctx.out.line(`${ctx.out.c.yellow('could not remove')} ${l.name}: ${l.error}`);
    if (d.items.length === 0) ctx.out.line('nothing to clean');
    if (d.dryRun) ctx.out.line('(dry run: pass --no-dry-run to remove; repository orphans are checked only then)');
  });
}
