import { access } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as z from 'zod';
import { ConfigError } from '@dsg/contracts';
import { readYamlFile, validateYaml } from './yaml-file.js';
import { agentCommandSchema } from './agent-command.js';
import { backupSettingsSchema } from './backups.js';

const filePath = z.string({ error: 'expected a file path' }).min(1);

/**
 * This person's settings for one repository host (the key: the host as a
 * repository config names it). Used for what a working copy's
 * .dsg/config.local.yml leaves out; never read from a project config.
 */
export const hostSettingsSchema = z.strictObject({
  port: z.number({ error: 'expected a port number' }).int().min(1).max(65535).optional(),
  user: z
    .string({ error: 'expected a login name' })
    .regex(/^[A-Za-z0-9_.-]+$/, { error: 'expected a login name' })
    .optional(),
  agent: agentCommandSchema.optional(),
  sudo: z.boolean({ error: 'expected true or false' }).optional(),
  key_path: filePath.optional(),
});

export type HostSettings = z.output<typeof hostSettingsSchema>;

export const userConfigSchema = z.strictObject({
  user_name: z.string({ error: 'expected your display name' }).min(1).optional(),
  user_id: z
    .string({ error: 'expected your user id (an email address)' })
    .regex(/^[^\s@]+@[^\s@]+$/, { error: 'expected your user id as an email address, e.g. ana@example.org' }),
  default_host: z.string({ error: 'expected a host name' }).optional(),
  default_project_path: z.string({ error: 'expected an absolute path' }).optional(),
  backup_on_conflict: z.boolean({ error: 'expected true or false' }).default(true),
  /** how much of what syncs replace is kept in each working copy's .dsg/backup (max_size, keep_days) */
  backups: backupSettingsSchema.optional(),
  ssh: z
    .strictObject({
      key_path: filePath.optional(),
      known_hosts: filePath.optional(),
      config_file: filePath.optional(),
      /** seconds without a sign of life from the agent before dsg gives up on it (0: never) */
      agent_timeout: z.number({ error: 'expected a number of seconds (0 = wait forever)' }).min(0).optional(),
    })
    .optional(),
  /** per repository host: port, user, agent, sudo, key_path (a working copy's .dsg/config.local.yml wins) */
  hosts: z
    .record(
      z.string().regex(/^[A-Za-z0-9_.:-]+$/, { error: 'expected a host name or ssh alias' }),
      hostSettingsSchema,
      { error: 'expected a mapping of host → settings' },
    )
    .optional(),
});

export type UserConfig = z.output<typeof userConfigSchema>;

/** The user config's settings for `host` (localhost when absent), if any. */
export function hostSettings(user: UserConfig | null, host: string | undefined): HostSettings | undefined {
  return user?.hosts?.[host ?? 'localhost'];
}

/** Where the user config may live, in the order they are tried (first found wins). */
export function userConfigCandidates(env: NodeJS.ProcessEnv = process.env): string[] {
  const out: string[] = [];
  if (env['DSG_CONFIG_HOME']) out.push(path.join(env['DSG_CONFIG_HOME'], 'dsg.yml'));
  if (env['XDG_CONFIG_HOME']) out.push(path.join(env['XDG_CONFIG_HOME'], 'dsg', 'dsg.yml'));
  out.push(path.join(env['HOME'] ?? os.homedir(), '.config', 'dsg', 'dsg.yml'));
  out.push('/etc/dsg/dsg.yml');
  return out;
}

export async function findUserConfig(env: NodeJS.ProcessEnv = process.env): Promise<string | null> {
  for (const f of userConfigCandidates(env)) {
    try {
      await access(f);
      return f;
    } catch {
      /* try the next one */
    }
  }
  return null;
}

export interface LoadedUser {
  file: string;
  config: UserConfig;
}

export async function loadUserConfig(env: NodeJS.ProcessEnv = process.env): Promise<LoadedUser | null> {
  const file = await findUserConfig(env);
  if (!file) return null;
  const src = await readYamlFile(file);
  return { file, config: validateYaml(src, userConfigSchema, src.value ?? {}) };
}

/** The user config, or a ConfigError telling where to create one. */
export async function requireUserConfig(env: NodeJS.ProcessEnv = process.env): Promise<LoadedUser> {
  const u = await loadUserConfig(env);
  if (u) return u;
  const where = userConfigCandidates(env);
  throw new ConfigError(
    `no user config found (looked at ${where.join(', ')})`,
    { file: where[0]! },
    {
      recoveryHint: `Create ${where[0]} with at least "user_id: you@example.org" (and user_name).`,
    },
  );
}
