import { access } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { ConfigError } from '@dsg/contracts';
import { readYamlFile, validateYaml, type YamlSource } from './yaml-file.js';

export const PROJECT_CONFIG_FILE = '.dsgconfig.yml';

export const DEFAULT_DATA_DIRS = ['input', 'output', 'frozen'];
export const DEFAULT_IGNORE = {
  names: ['.DS_Store', '__pycache__', '.Rhistory', '.RData', '.ipynb_checkpoints'],
  suffixes: ['.tmp', '.pyc'],
  paths: [] as string[],
};

/** A repository name is also a dataset and directory name: keep it to safe characters. */
export const repoNameSchema = z
  .string({ error: 'expected a string (the repository name)' })
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$/, {
    error: 'expected a name of letters, digits, ".", "_" or "-" (starting with a letter or digit)',
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

const agentSchema = z
  .union([z.string().min(1), z.array(z.string().min(1)).min(1)], {
    error: 'expected the agent command: a path, or a list [program, arg, …]',
  })
  .transform((a) => (typeof a === 'string' ? [a] : a));

const common = {
  host: hostSchema.optional(),
  port: z.number({ error: 'expected a port number' }).int().min(1).max(65535).optional(),
  user: z.string({ error: 'expected a login name' }).regex(/^[A-Za-z0-9_.-]+$/).optional(),
  agent: agentSchema.optional(),
};

export const zfsRepositorySchema = z.strictObject({
  type: z.literal('zfs'),
  ...common,
  pool: z
    .string({ error: 'expected the parent dataset (e.g. tank/dsg)' })
    .regex(/^[A-Za-z0-9][A-Za-z0-9_.:/-]*$/, { error: 'expected a ZFS dataset name such as tank/dsg' })
    .refine((p) => !p.endsWith('/') && !p.includes('//'), { error: 'expected a ZFS dataset name such as tank/dsg' }),
  mountpoint: absPath('where the pool dataset is mounted'),
  /** run `sudo -n zfs` (agent running as a normal user; see the README) */
  sudo: z.boolean({ error: 'expected true or false' }).optional(),
});

export const posixRepositorySchema = z.strictObject({
  type: z.enum(['posix', 'xfs']).transform(() => 'posix' as const),
  ...common,
  root: absPath('the directory holding repositories'),
});

export const repositorySchema = z.discriminatedUnion('type', [zfsRepositorySchema, posixRepositorySchema], {
  error: 'expected type: zfs or posix (xfs is read as posix)',
});

const relDir = z
  .string({ error: 'expected a relative directory name' })
  .min(1)
  .refine((d) => !path.posix.isAbsolute(d) && !d.split('/').some((c) => c === '..' || c === '.' || c === ''), {
    error: 'expected a relative directory inside the project (no "..", no leading "/")',
  });

export const projectConfigSchema = z.strictObject({
  name: repoNameSchema,
  repository: repositorySchema,
  data_dirs: z.array(relDir, { error: 'expected a list of directory names' }).min(1).default(DEFAULT_DATA_DIRS),
  ignore: z
    .strictObject({
      names: z.array(z.string(), { error: 'expected a list of file names' }).default(DEFAULT_IGNORE.names),
      suffixes: z.array(z.string(), { error: 'expected a list of suffixes like .tmp' }).default(DEFAULT_IGNORE.suffixes),
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

export interface LoadedProject {
  /** the project root (directory holding .dsgconfig.yml) */
  root: string;
  file: string;
  config: ProjectConfig;
  /** true when read from the ancestor's legacy form */
  legacy: boolean;
  /** the raw YAML value (recorded as project_config in manifests) */
  raw: Record<string, unknown>;
}

/** Walk up from `start` to the directory holding .dsgconfig.yml, like git finds .git. */
export async function findProjectRoot(start: string): Promise<string | null> {
  let dir = path.resolve(start);
  for (;;) {
    try {
      await access(path.join(dir, PROJECT_CONFIG_FILE));
      return dir;
    } catch {
      const up = path.dirname(dir);
      if (up === dir) return null;
      dir = up;
    }
  }
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
      : { type, host: l.ssh.host, root: l.ssh.path };
  const out: Record<string, unknown> = { name, repository };
  const dataDirs = l.data_dirs ?? l.project?.data_dirs;
  if (dataDirs) out['data_dirs'] = dataDirs;
  const ignore = l.ignore ?? l.project?.ignore;
  if (ignore) out['ignore'] = ignore;
  return out;
}

export function isLegacy(value: unknown): boolean {
  return typeof value === 'object' && value !== null && ('transport' in value || 'ssh' in value) && !('repository' in value);
}

export function parseProjectSource(src: YamlSource): { config: ProjectConfig; legacy: boolean; raw: Record<string, unknown> } {
  if (typeof src.value !== 'object' || src.value === null || Array.isArray(src.value)) {
    throw new ConfigError(`${src.file}:1: expected a mapping with name, repository, data_dirs`, { file: src.file, line: 1 }, {
      recoveryHint: `Write ${src.file} as in the README (name:, repository:, data_dirs:).`,
    });
  }
  const legacy = isLegacy(src.value);
  const value = legacy ? fromLegacy(src) : src.value;
  return { config: validateYaml(src, projectConfigSchema, value), legacy, raw: value as Record<string, unknown> };
}

export async function loadProjectConfig(root: string): Promise<LoadedProject> {
  const file = path.join(root, PROJECT_CONFIG_FILE);
  const src = await readYamlFile(file);
  return { root, file, ...parseProjectSource(src) };
}

/** Find and load the project config from `cwd` upwards; ConfigError if there is none. */
export async function requireProject(cwd: string): Promise<LoadedProject> {
  const root = await findProjectRoot(cwd);
  if (!root) {
    throw new ConfigError(`no ${PROJECT_CONFIG_FILE} found in ${cwd} or any parent directory`, { file: PROJECT_CONFIG_FILE }, {
      recoveryHint: 'Run `dsg init` to create a project here, or `dsg clone` to fetch one, or cd into a project.',
    });
  }
  return loadProjectConfig(root);
}
