/**
 * The `--json` output of every command: one document on stdout, validated
 * against these schemas before it is written (and in the tests). Documented
 * in the README; changing a shape is a breaking change of the CLI.
 */
import * as z from 'zod';
import { SNAPSHOT_ID_RE } from '@dsg/contracts';

const snapshotId = z.string().regex(SNAPSHOT_ID_RE);
const iso = z.string().min(1);

/** Any failure: the error and the exit code (also under --json). */
export const errorDocSchema = z.object({
  error: z.object({
    name: z.string(),
    code: z.string(),
    message: z.string(),
    recoveryHint: z.string(),
    details: z.record(z.string(), z.unknown()).optional(),
  }),
  /** 1–4 (see Exit codes), or 130: stopped by Ctrl-C (code INTERRUPTED) */
  exitCode: z.union([z.number().int().min(1).max(4), z.literal(130)]),
});

export const pathStateSchema = z.object({ path: z.string(), state: z.string(), action: z.string() });

const listDiffSchema = z.object({ added: z.array(z.string()), removed: z.array(z.string()) });

/** What the repository's .dsgconfig.yml would change here (status: pending; sync: accepted with --accept-config). */
export const configChangeSchema = z.object({
  dataDirs: listDiffSchema,
  ignore: z.object({ names: listDiffSchema, suffixes: listDiffSchema, paths: listDiffSchema }),
  /** data dirs or ignore rules differ: `dsg sync` refuses until `--accept-config` */
  scopeChanged: z.boolean(),
  /** keys (name, repository.*) it names differently from .dsg/config.local.yml: never used */
  connectionIgnored: z.array(z.string()),
  /** why it is refused whatever the consent, or null */
  invalid: z.string().nullable(),
});

/** files here outside every data directory (not synced): how many, and each directory holding some ('' = the project root) */
export const outsideDataSchema = z.object({
  files: z.number().int(),
  directories: z.array(z.object({ path: z.string(), files: z.number().int() })),
});

export const statusSchema = z.object({
  command: z.literal('status'),
  project: z.string(),
  repository: z.string(),
  /** the repository's head, null when it has no snapshot yet; with `offline`, the last sync's snapshot */
  remoteSnapshot: snapshotId.nullable(),
  /**
   * `status --offline`: compared with the last sync only, the repository not
   * asked. Then `upload` is every path changed or added here since the last
   * sync, `deleteRemote` every path deleted here, and nothing is a download,
   * a local deletion or a conflict (`configChange` null).
   */
  offline: z.boolean(),
  upload: z.array(z.string()),
  download: z.array(z.string()),
  deleteLocal: z.array(z.string()),
  deleteRemote: z.array(z.string()),
  conflicts: z.array(z.string()),
  invalidNames: z.array(z.object({ path: z.string(), reason: z.string() })),
  /** repository entries this client never writes (outside its data dirs, .git/.dsg, unsafe links, case twins): kept in the repository as they are */
  heldBack: z.array(z.object({ path: z.string(), reason: z.string() })),
  /** every path that is not all-equal, with its state name */
  paths: z.array(pathStateSchema),
  clean: z.boolean(),
  /** the repository's .dsgconfig.yml the next sync would bring, when it changes scope or names another connection; else null */
  configChange: configChangeSchema.nullable(),
  outsideData: outsideDataSchema,
});

export const transferCountsSchema = z.object({
  uploaded: z.number().int(),
  downloaded: z.number().int(),
  deletedLocal: z.number().int(),
  deletedRemote: z.number().int(),
  bytes: z.number().int(),
  bytesReused: z.number().int(),
});

const keptFileSchema = z.object({
  /** where it is kept, relative to the project: `.dsg/backup/<transaction>/<original>` */
  path: z.string(),
  /** the working-copy path it was */
  original: z.string(),
  size: z.number().int(),
});

/** What a sync, clone or `--continue` kept of what it replaced, and what the limits removed. */
export const backupSummarySchema = z.object({
  /** the files this command replaced or deleted, kept in .dsg/backup */
  kept: z.array(keptFileSchema),
  keptBytes: z.number().int(),
  /** local versions that lost a conflict resolution, kept beside the file as `name~TIMESTAMP~` */
  conflictCopies: z.array(z.string()),
  /** older backup sets removed by the `backups:` limits (max_size, keep_days) */
  removed: z.array(
    z.object({ transactionId: z.string(), time: iso, files: z.number().int(), bytes: z.number().int() }),
  ),
  removedBytes: z.number().int(),
  /** everything in .dsg/backup afterwards */
  total: z.object({ files: z.number().int(), bytes: z.number().int() }),
  limits: z.object({ maxBytes: z.number().int().nullable(), keepDays: z.number().nullable() }),
});

export const syncSchema = z.object({
  command: z.enum(['sync', 'init', 'clone']),
  project: z.string(),
  repository: z.string(),
  /** the snapshot the working dir is at after the command (null: dry run of init) */
  snapshotId: snapshotId.nullable(),
  /** true when a new snapshot was committed on the server */
  committed: z.boolean(),
  dryRun: z.boolean(),
  message: z.string().nullable(),
  counts: transferCountsSchema,
  paths: z.array(pathStateSchema),
  /** repository entries held back (never written here, kept in the repository); absent in the dry runs of init and clone */
  heldBack: z.array(z.object({ path: z.string(), reason: z.string() })).optional(),
  /** sync --accept-config: the change of data dirs / ignore rules it took (applies from the next sync); else null or absent */
  configChange: configChangeSchema.nullable().optional(),
  /** init/sync --normalize: names renamed to NFC before the scan (with --dry-run: would be) */
  normalized: z.array(z.object({ from: z.string(), to: z.string() })).optional(),
  /** init: files outside every data directory (not synced) */
  outsideData: outsideDataSchema.optional(),
  /** what was kept in .dsg/backup and beside conflicting files (absent under --dry-run) */
  backups: backupSummarySchema.optional(),
});

export const logSchema = z.object({
  command: z.literal('log'),
  snapshots: z.array(
    z.object({
      snapshotId,
      createdAt: iso,
      user: z.string(),
      message: z.string().nullable(),
      hash: z.string().nullable(),
      added: z.number().int().nullable(),
      changed: z.number().int().nullable(),
      removed: z.number().int().nullable(),
    }),
  ),
});

export const blameSchema = z.object({
  command: z.literal('blame'),
  path: z.string(),
  events: z.array(
    z.object({
      snapshotId,
      createdAt: iso,
      change: z.enum(['added', 'changed', 'removed']),
      user: z.string(),
      hash: z.string().nullable(),
      message: z.string().nullable(),
    }),
  ),
});

export const snapfetchSchema = z.object({
  command: z.literal('snapfetch'),
  path: z.string(),
  snapshotId,
  output: z.string(),
  bytes: z.number().int(),
  hash: z.string(),
});

export const snapmountSchema = z.object({
  command: z.literal('snapmount'),
  action: z.enum(['mount', 'unmount']),
  snapshotId: snapshotId.nullable(),
  mountpoint: z.string(),
});

export const listFilesSchema = z.object({
  command: z.literal('list-files'),
  snapshotId: snapshotId.nullable(),
  entries: z.array(
    z.object({
      path: z.string(),
      type: z.enum(['file', 'link']),
      size: z.number().int().nullable(),
      mtime: z.string().nullable(),
      user: z.string(),
      hash: z.string().nullable(),
      reference: z.string().nullable(),
    }),
  ),
});

export const listReposSchema = z.object({
  command: z.literal('list-repos'),
  host: z.string(),
  type: z.enum(['zfs', 'posix']),
  repositories: z.array(z.string()),
  /** the read-only replicas among them, how far behind their primary (empty: none, or an agent that cannot tell) */
  replicas: z.array(
    z.object({
      name: z.string(),
      replicaOf: z.string(),
      head: z.string().nullable(),
      primaryHead: z.string().nullable(),
      behind: z.number().int().nullable(),
      primaryError: z.string().nullable(),
    }),
  ),
});

const settingSchema = z.object({
  value: z.unknown(),
  source: z.enum(['flag', 'env', 'local', 'user-host', 'user', 'shared', 'default']),
  from: z.string().nullable(),
  note: z.string().optional(),
});

export const validateConfigSchema = z.object({
  command: z.literal('validate-config'),
  ok: z.boolean(),
  projectFile: z.string().nullable(),
  userFile: z.string().nullable(),
  legacy: z.boolean(),
  fixedLegacy: z.boolean(),
  backend: z.object({ checked: z.boolean(), ok: z.boolean().nullable(), detail: z.string().nullable() }),
  /** where the connection settings come from: .dsg/config.local.yml (local, or pinned just now), or .dsgconfig.yml in a copy that never synced */
  connection: z.object({ file: z.string(), source: z.enum(['local', 'pinned', 'shared']) }).nullable(),
  /** where a setting may come from, highest precedence first */
  precedence: z.array(z.string()),
  /** every effective setting: its value, where it came from (`from`: file or variable, null for a default), and what it shadows */
  settings: z.array(settingSchema.extend({ key: z.string(), shadowed: z.array(settingSchema) })),
  /** what --fix did with per-person keys of .dsgconfig.yml (null without --fix) */
  fix: z
    .object({
      moved: z.array(z.object({ key: z.string(), value: z.unknown() })),
      kept: z.array(z.object({ key: z.string(), value: z.unknown(), reason: z.string() })),
      dropped: z.array(z.object({ key: z.string(), value: z.unknown() })),
    })
    .nullable(),
});

export const validateFileSchema = z.object({
  command: z.literal('validate-file'),
  path: z.string(),
  ok: z.boolean(),
  nameProblem: z.string().nullable(),
  inManifest: z.boolean(),
  hash: z.string().nullable(),
  manifestHash: z.string().nullable(),
});

export const validateSnapshotSchema = z.object({
  command: z.literal('validate-snapshot'),
  snapshotId,
  ok: z.boolean(),
  files: z.number().int(),
  problems: z.array(z.object({ path: z.string(), reason: z.string() })),
  /** entries another tool recorded against dsg's rules (held back by sync): listed, never opened */
  heldBack: z.array(z.object({ path: z.string(), reason: z.string() })).optional(),
});

export const validateChainSchema = z.object({
  command: z.literal('validate-chain'),
  ok: z.boolean(),
  snapshots: z.number().int(),
  problem: z.object({ snapshotId: z.string(), reason: z.string() }).nullable(),
});

export const cleanSchema = z.object({
  command: z.literal('clean'),
  dryRun: z.boolean(),
  target: z.enum(['all', 'staging', 'backups', 'orphans']),
  /** what was removed, or would be under a dry run (`--backups`: each file, with its size) */
  items: z.array(z.object({ kind: z.string(), path: z.string(), size: z.number().int().optional() })),
  leftovers: z.array(z.object({ name: z.string(), error: z.string() })),
  /** `--backups`: bytes removed (or that would be) */
  bytes: z.number().int().optional(),
  /** `--backups --older-than`: the duration as given */
  olderThan: z.string().nullable().optional(),
});

/** `dsg backups`: every file kept in .dsg/backup, oldest first. */
export const backupsSchema = z.object({
  command: z.literal('backups'),
  project: z.string(),
  backups: z.array(
    keptFileSchema.extend({
      transactionId: z.string(),
      time: iso,
      /** its sync is not finished (a journal exists): `dsg clean --backups` keeps it */
      pending: z.boolean(),
    }),
  ),
  files: z.number().int(),
  bytes: z.number().int(),
  sets: z.number().int(),
  limits: backupSummarySchema.shape.limits,
});

/** One side of `dsg diff`: absent, a file (size, hash, mtime, user) or a link (reference). */
export const diffSideSchema = z.object({
  present: z.boolean(),
  type: z.enum(['file', 'link']).nullable(),
  size: z.number().int().nullable(),
  hash: z.string().nullable(),
  mtime: z.string().nullable(),
  /** who recorded it (null for the local side) */
  user: z.string().nullable(),
  reference: z.string().nullable(),
});

/** `dsg diff PATH`: the file here, as of the last sync and in the repository's head; unified diffs of text. */
export const diffSchema = z.object({
  command: z.literal('diff'),
  path: z.string(),
  offline: z.boolean(),
  local: diffSideSchema,
  lastSync: diffSideSchema.extend({ snapshotId }),
  /** null under --offline */
  repository: diffSideSchema.extend({ snapshotId: snapshotId.nullable() }).nullable(),
  changedHere: z.boolean(),
  /** null under --offline */
  changedInRepository: z.boolean().nullable(),
  /** for text files: each change against the last sync, as a unified diff */
  patches: z.array(z.object({ from: z.literal('lastSync'), to: z.enum(['local', 'repository']), patch: z.string() })),
});

/** Every schema by command name (the README lists the same). */
export const jsonSchemas = {
  error: errorDocSchema,
  init: syncSchema,
  clone: syncSchema,
  sync: syncSchema,
  status: statusSchema,
  log: logSchema,
  blame: blameSchema,
  snapfetch: snapfetchSchema,
  snapmount: snapmountSchema,
  'list-files': listFilesSchema,
  'list-repos': listReposSchema,
  'validate-config': validateConfigSchema,
  'validate-file': validateFileSchema,
  'validate-snapshot': validateSnapshotSchema,
  'validate-chain': validateChainSchema,
  clean: cleanSchema,
  backups: backupsSchema,
  diff: diffSchema,
} as const;
