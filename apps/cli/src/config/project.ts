import { access, mkdir } from 'node:fs/promises';
import { isDeepStrictEqual } from 'node:util';
import path from 'node:path';
import { stringify } from 'yaml';
import * as z from 'zod';
import { createHash } from 'node:crypto';
import {
  ConfigError,
  LAST_SYNC,
  LOCAL_CONFIG_FILE,
  PROJECT_CONFIG_FILE,
  repositoryNameProblem,
  writeFileAtomic,
} from '@dsg/contracts';
import { dataDirProblem, DEFAULT_DATA_DIRS as SCAN_DATA_DIRS, DEFAULT_IGNORE as SCAN_IGNORE } from '@dsg/manifest';
import { readYamlFile, validateYaml, type YamlSource } from './yaml-file.js';
import { findProjectRoot, requireProjectRoot } from './project-root.js';
import { agentCommandSchema } from './agent-command.js';
import { backupSettingsSchema } from './backups.js';

export { findProjectRoot };

// the file names are contracts' one layout
export { LOCAL_CONFIG_FILE, PROJECT_CONFIG_FILE };

// the scanner's defaults (one definition, in @dsg/manifest), as the mutable values a config document holds
export const DEFAULT_DATA_DIRS: string[] = [...SCAN_DATA_DIRS];
export const DEFAULT_IGNORE = {
  names: [...SCAN_IGNORE.names],
  suffixes: [...SCAN_IGNORE.suffixes],
  paths: [...SCAN_IGNORE.paths] as string[],
};

/** A repository name is also a dataset and directory name: contracts' one rule, the agent's. */
export const repoNameSchema = z
  .string({ error: 'expected a string (the repository name)' })
  .superRefine((name, ctx) => {
    const problem = repositoryNameProblem(name);
    if (problem !== null) ctx.addIssue({ code: 'custom', message: `the repository name ${problem}` });
  });

const absPath = (what: string) =>
  z
    .string({ error: `expected an absolute path (${what})` })
    .refine((p) => path.posix.isAbsolute(p) && !p.split('/').includes('..'), {
      error: `expected an absolute path without ".." (${what})`,
    });

const hostSchema = z
  .string({ error: 'expected a host name, ssh alias or "localhost"' })
  .regex(/^[A-Za-z0-9_.:-]+$/, { error: 'expected a host name, ssh alias or "localhost" (no spaces or options)' })
  .refine((h) => !h.startsWith('-'), { error: 'a host may not start with "-"' });

const common = {
  host: hostSchema.optional(),
  port: z.number({ error: 'expected a port number' }).int().min(1).max(65535).optional(),
  user: z
    .string({ error: 'expected a login name' })
    .regex(/^[A-Za-z0-9_.-]+$/)
    .optional(),
  agent: agentCommandSchema.optional(),
};

export const zfsRepositorySchema = z.strictObject({
  type: z.literal('zfs'),
  ...common,
  pool: z
    .string({ error: 'expected the parent dataset (e.g. tank/dsg)' })
    .regex(/^[A-Za-z0-9][A-Za-z0-9_.:/-]*$/, { error: 'expected a ZFS dataset name such as tank/dsg' })
    .refine((p) => p.split('/').every((c) => c !== '' && c !== '.' && c !== '..'), {
      error: 'expected a ZFS dataset name such as tank/dsg (no empty, "." or ".." components)',
    }),
  mountpoint: absPath('where the pool dataset is mounted'),
  /** run `sudo -n zfs` (agent running as a normal user; see the README) */
  sudo: z.boolean({ error: 'expected true or false' }).optional(),
});

/**
 * posix: `root` holds the repositories. xfs, the original dsg's form
 * (`{type: xfs, host, mountpoint}`): the repository is `<mountpoint>/<name>`,
 * the original's flat tree with `.dsg/` inside; read as posix with
 * `root: mountpoint` and `flat: true` (a new repository is made flat, an
 * existing one is opened in the layout it has). `{type: xfs, root}` is read
 * as posix, as before.
 */
export const posixRepositorySchema = z
  .strictObject({
    type: z.enum(['posix', 'xfs']),
    ...common,
    root: absPath('the directory holding repositories').optional(),
    mountpoint: absPath('the directory holding the repository directory <name> (xfs)').optional(),
  })
  .superRefine((r, ctx) => {
    if (r.mountpoint !== undefined && r.type !== 'xfs') {
      ctx.addIssue({
        code: 'custom',
        path: ['mountpoint'],
        message: "mountpoint is for type xfs (the original dsg's flat repository); type posix takes root",
      });
    } else if (r.mountpoint !== undefined && r.root !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['root'], message: 'expected root or mountpoint, not both' });
    } else if (r.mountpoint === undefined && r.root === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: [],
        message:
          r.type === 'xfs'
            ? 'expected mountpoint (the directory holding the repository directory <name>)'
            : 'expected root (the directory holding repositories)',
      });
    }
  })
  .transform(({ type: _type, root, mountpoint, ...rest }): PosixRepositoryConfig => ({
    type: 'posix',
    ...rest,
    root: (root ?? mountpoint)!,
    ...(mountpoint !== undefined ? { flat: true as const } : {}),
  }));

export interface PosixRepositoryConfig {
  type: 'posix';
  host?: string | undefined;
  port?: number | undefined;
  user?: string | undefined;
  agent?: string[] | undefined;
  root: string;
  /** written as the original's `{type: xfs, mountpoint}`: its flat repository layout */
  flat?: true;
}

export const repositorySchema = z.discriminatedUnion('type', [zfsRepositorySchema, posixRepositorySchema], {
  error: "expected type: zfs or posix (or xfs, the original dsg's flat repository)",
});

/**
 * A repository block as it is written to a file: the form it was read in
 * (`flat` → the original's `{type: xfs, host, mountpoint}`, which the
 * original dsg reads too).
 */
export function repositoryYaml(repo: RepositoryConfig): Record<string, unknown> {
  if (repo.type !== 'posix' || !repo.flat) return { ...repo };
  const { type: _type, flat: _flat, root, host, ...rest } = repo;
  return { type: 'xfs', ...(host !== undefined ? { host } : {}), mountpoint: root, ...rest };
}

/**
 * A data dir is one plain name, matched at any depth (tasks/x/input is data).
 * Never hidden: `.dsg` is dsg's own state and `.git` holds credentials
 * (remote URLs with tokens); a teammate who could widen the scope to them
 * would have every working copy upload them.
 */
export { dataDirProblem };

const dataDir = z.string({ error: 'expected a relative directory name' }).refine((d) => dataDirProblem(d) === null, {
  error:
    'expected a relative directory inside the project: one plain name, not hidden (no "/", "..", leading "."; .dsg and .git are never data)',
});

export const projectConfigSchema = z.strictObject({
  name: repoNameSchema,
  repository: repositorySchema,
  data_dirs: z.array(dataDir, { error: 'expected a list of directory names' }).min(1).default(DEFAULT_DATA_DIRS),
  ignore: z
    .strictObject({
      names: z.array(z.string(), { error: 'expected a list of file names' }).default(DEFAULT_IGNORE.names),
      suffixes: z
        .array(z.string(), { error: 'expected a list of suffixes like .tmp' })
        .default(DEFAULT_IGNORE.suffixes),
      paths: z.array(z.string(), { error: 'expected a list of relative paths' }).default([]),
    })
    .default(DEFAULT_IGNORE),
});

export type ProjectConfig = z.output<typeof projectConfigSchema>;
export type RepositoryConfig = ProjectConfig['repository'];

/** The ancestor's form: `transport: ssh` + `ssh: {host, path, name, type}` (+ `project: {data_dirs, ignore}`). */
const legacySchema = z.object({
  name: repoNameSchema.optional(),
  transport: z.enum(['ssh', 'local'], { error: 'expected transport: ssh or local' }),
  ssh: z.object(
    {
      host: hostSchema,
      path: absPath('where repositories live on the host'),
      name: repoNameSchema.optional(),
      type: z.enum(['zfs', 'xfs', 'posix'], { error: 'expected type: zfs or xfs' }),
      pool: z.string().optional(),
    },
    { error: 'expected an ssh: block with host, path, name, type' },
  ),
  project: z
    .object({ data_dirs: z.array(z.string()).optional(), ignore: z.record(z.string(), z.unknown()).optional() })
    .optional(),
  data_dirs: z.array(z.string()).optional(),
  ignore: z.record(z.string(), z.unknown()).optional(),
});

/** Settings of one person or machine: never taken from a copy of .dsgconfig.yml that came from the repository. */
export const PERSONAL_KEYS = ['port', 'user', 'agent', 'sudo'] as const;

export const localConfigSchema = z.strictObject({
  name: repoNameSchema,
  repository: repositorySchema,
  /** the connection block of a .dsgconfig.yml already reported as ignored (sha-256), so it is reported once */
  ignored_shared_connection: z
    .string()
    .regex(/^[0-9a-f]{64}$/, { error: 'expected a sha-256 (written by dsg)' })
    .optional(),
  /** this copy's limits on .dsg/backup (over the user config's `backups:`) */
  backups: backupSettingsSchema.optional(),
});

export type LocalConfig = z.output<typeof localConfigSchema>;

export interface LoadedProject {
  /** the project root (directory holding .dsgconfig.yml) */
  root: string;
  file: string;
  /** what dsg uses: scope (data_dirs, ignore) from .dsgconfig.yml; name and repository from the local source */
  config: ProjectConfig;
  /** .dsgconfig.yml exactly as it reads (shared with the team; travels with the repository) */
  shared: ProjectConfig;
  /** where name and repository came from: the local file, pinned just now from .dsgconfig.yml, or .dsgconfig.yml of a copy that never synced */
  connection: { file: string; source: 'local' | 'pinned' | 'shared'; local: LocalConfig | null };
  /** things to tell the user once (pinning, an ignored connection block) */
  notices: string[];
  /** record that the notices were shown (an ignored connection block is then not reported again); null when there is nothing to record */
  acknowledge: (() => Promise<void>) | null;
  /** true when read from the ancestor's legacy form */
  legacy: boolean;
  /** the raw YAML value (recorded as project_config in manifests) */
  raw: Record<string, unknown>;
}

/** The repository block without the per-person keys: what init and clone write into the shared .dsgconfig.yml. */
export function sharedRepository(repo: RepositoryConfig): Record<string, unknown> {
  const out = repositoryYaml(repo);
  for (const k of PERSONAL_KEYS) delete out[k];
  return out;
}

/**
 * The keys of a .dsgconfig.yml connection (name, repository.*) that differ
 * from the local one. A key the shared file leaves out names nothing and is
 * not a difference (the shared file carries no per-person keys).
 */
export function connectionDifferences(
  shared: { name: string; repository: RepositoryConfig },
  local: { name: string; repository: RepositoryConfig },
): string[] {
  const out: string[] = [];
  if (shared.name !== local.name) out.push('name');
  const l = local.repository as Record<string, unknown>;
  // `flat` (the xfs form) names no other repository: it only says how a new one is laid out
  for (const [k, v] of Object.entries(shared.repository))
    if (v !== undefined && k !== 'flat' && !isDeepStrictEqual(v, l[k])) out.push(`repository.${k}`);
  return out;
}

export function connectionKey(c: { name: string; repository: RepositoryConfig }): string {
  const canon = (v: unknown): unknown =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(
          Object.entries(v)
            .sort(([a], [b]) => (a < b ? -1 : 1))
            .map(([k, x]) => [k, canon(x)]),
        )
      : v;
  return createHash('sha256')
    .update(JSON.stringify(canon({ name: c.name, repository: c.repository })))
    .digest('hex');
}

/** `localhost:/srv/dsg/demo, agent node /x.mjs` — what a connection names, for notices. */
export function connectionSummary(c: { name: string; repository: RepositoryConfig }): string {
  const r = c.repository;
  const where =
    r.type === 'zfs'
      ? `${r.host ?? 'localhost'}:${r.pool}/${c.name}`
      : `${r.host ?? 'localhost'}:${path.posix.join(r.root, c.name)}`;
  const extra = [
    r.user ? `user ${r.user}` : '',
    r.port ? `port ${r.port}` : '',
    r.agent ? `agent ${r.agent.join(' ')}` : '',
    r.type === 'zfs' && r.sudo ? 'sudo' : '',
  ].filter(Boolean);
  return [where, ...extra].join(', ');
}

export const IGNORED_CONNECTION_NOTICE = `the repository's ${PROJECT_CONFIG_FILE} names another repository/agent; ignored — connection settings are local`;

export function ignoredConnectionNotice(diff: string[]): string {
  return `${IGNORED_CONNECTION_NOTICE} (${LOCAL_CONFIG_FILE}; differs: ${diff.join(', ')})`;
}

/** Write .dsg/config.local.yml atomically (never half written, durable once this returns). */
export async function writeLocalConfig(root: string, c: LocalConfig): Promise<void> {
  const file = path.join(root, LOCAL_CONFIG_FILE);
  await mkdir(path.dirname(file), { recursive: true });
  const text =
    `# How this working copy reaches its repository. Local to this machine: never synced, and the\n` +
    `# repository block of ${PROJECT_CONFIG_FILE} is not used to connect. Edit this file to move the repository.\n` +
    stringify({
      name: c.name,
      repository: repositoryYaml(c.repository),
      ...(c.ignored_shared_connection ? { ignored_shared_connection: c.ignored_shared_connection } : {}),
      ...(c.backups ? { backups: c.backups } : {}),
    });
  await writeFileAtomic(file, text, { mode: 0o644 });
}

export async function readLocalConfig(root: string): Promise<LocalConfig | null> {
  const file = path.join(root, LOCAL_CONFIG_FILE);
  if (!(await pathExists(file))) return null;
  const src = await readYamlFile(file);
  return validateYaml(src, localConfigSchema, src.value ?? {});
}

async function pathExists(p: string): Promise<boolean> {
  return access(p).then(
    () => true,
    () => false,
  );
}

/** Convert the legacy form to the current one (validate-config --fix-legacy writes the result). */
export function fromLegacy(src: YamlSource): Record<string, unknown> {
  const l = validateYaml(src, legacySchema);
  const name = l.name ?? l.ssh.name;
  const type = l.ssh.type === 'zfs' ? 'zfs' : 'posix';
  const repository: Record<string, unknown> =
    type === 'zfs'
      ? // The ancestor derived the pool from the path's last component (/var/repos/zsd → zsd).
        { type, host: l.ssh.host, pool: l.ssh.pool ?? path.posix.basename(l.ssh.path), mountpoint: l.ssh.path }
      : l.ssh.type === 'xfs'
        ? // the original's xfs repository is <path>/<name>, its flat tree (the original's current form: mountpoint)
          { type: 'xfs', host: l.ssh.host, mountpoint: l.ssh.path }
        : { type, host: l.ssh.host, root: l.ssh.path };
  const out: Record<string, unknown> = { name, repository };
  const dataDirs = l.data_dirs ?? l.project?.data_dirs;
  if (dataDirs) out['data_dirs'] = dataDirs;
  const ignore = l.ignore ?? l.project?.ignore;
  if (ignore) out['ignore'] = ignore;
  return out;
}

export function isLegacy(value: unknown): boolean {
  return (
    typeof value === 'object' && value !== null && ('transport' in value || 'ssh' in value) && !('repository' in value)
  );
}

export function parseProjectSource(src: YamlSource): {
  config: ProjectConfig;
  legacy: boolean;
  raw: Record<string, unknown>;
} {
  if (typeof src.value !== 'object' || src.value === null || Array.isArray(src.value)) {
    throw new ConfigError(
      `${src.file}:1: expected a mapping with name, repository, data_dirs`,
      { file: src.file, line: 1 },
      {
        recoveryHint: `Write ${src.file} as in the README (name:, repository:, data_dirs:).`,
      },
    );
  }
  const legacy = isLegacy(src.value);
  const value = legacy ? fromLegacy(src) : src.value;
  return { config: validateYaml(src, projectConfigSchema, value), legacy, raw: value as Record<string, unknown> };
}

/**
 * Load .dsgconfig.yml and the connection settings: from .dsg/config.local.yml
 * when it exists; a working copy that has synced but has none (made by an
 * older dsg) pins the repository block of its .dsgconfig.yml there now; one
 * that never synced uses .dsgconfig.yml as it is (nothing has come from a
 * repository yet). A .dsgconfig.yml whose connection differs from the local
 * one is reported once (notices) and never used.
 */
export async function loadProjectConfig(root: string): Promise<LoadedProject> {
  const file = path.join(root, PROJECT_CONFIG_FILE);
  const src = await readYamlFile(file);
  const parsed = parseProjectSource(src);
  const shared = parsed.config;
  const notices: string[] = [];
  let acknowledge: LoadedProject['acknowledge'] = null;
  const localFile = path.join(root, LOCAL_CONFIG_FILE);
  let local = await readLocalConfig(root);
  let source: LoadedProject['connection']['source'] = 'local';
  // The agent command runs on the server under the user's own login, and .dsgconfig.yml is anyone's
  // who can commit to the project (git or the repository): it is never taken from there, only from
  // .dsg/config.local.yml, the user config (hosts:) or --agent.
  const { agent: sharedAgent, ...sharedConnection } = shared.repository;
  const trusted = { ...shared, repository: sharedConnection as RepositoryConfig };
  if (sharedAgent !== undefined && !local) {
    notices.push(
      `ignored repository.agent (${sharedAgent.join(' ')}) in ${PROJECT_CONFIG_FILE}: an agent command runs on the server as you, so dsg takes it only from ${LOCAL_CONFIG_FILE}, your user config (hosts: <host>: agent:) or --agent`,
    );
  }
  if (!local && (await pathExists(path.join(root, LAST_SYNC)))) {
    local = { name: trusted.name, repository: trusted.repository };
    await writeLocalConfig(root, local);
    source = 'pinned';
    notices.push(
      `pinned the connection settings of ${PROJECT_CONFIG_FILE} (${connectionSummary(local)}) into ${LOCAL_CONFIG_FILE}; from now on dsg connects with those and never with a ${PROJECT_CONFIG_FILE} that comes from the repository`,
    );
  } else if (local) {
    const diff = connectionDifferences(shared, local);
    const key = connectionKey(shared);
    if (diff.length > 0 && local.ignored_shared_connection !== key) {
      notices.push(ignoredConnectionNotice(diff));
      const seen = { ...local, ignored_shared_connection: key };
      acknowledge = () => writeLocalConfig(root, seen);
    }
  } else source = 'shared';
  const config: ProjectConfig = local ? { ...shared, name: local.name, repository: local.repository } : trusted;
  return {
    root,
    file,
    config,
    shared,
    connection: { file: localFile, source, local },
    notices,
    acknowledge,
    legacy: parsed.legacy,
    raw: parsed.raw,
  };
}

/** Find and load the project config from `cwd` upwards; ConfigError if there is none. */
export async function requireProject(cwd: string): Promise<LoadedProject> {
  return loadProjectConfig(await requireProjectRoot(cwd));
}
