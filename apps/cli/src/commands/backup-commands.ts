/*
 * Backups you can see and bound: what a sync kept in `.dsg/backup` is said in
 * its summary, `dsg backups` lists it, `dsg clean --backups` removes it, and
 * the personal `backups:` limits (max_size, keep_days) are applied after each
 * sync. Nothing here ever touches a path outside `.dsg/backup/`.
 */
import path from 'node:path';
import { listBackups, removeBackups, type BackupSet } from '@dsg/client-fs';
import type { SyncResult } from '@dsg/coordinator';
import type { z } from 'zod';
import type { Ctx } from '../context.js';
import { backupLimits, parseDuration } from '../config/backups.js';
import type { LoadedProject } from '../config/project.js';
import type { LoadedUser } from '../config/user.js';
import { loadUserConfig } from '../config/user.js';
import { loadProject } from '../session.js';
import { backupsSchema, cleanSchema, type backupSummarySchema } from '../output/json-schemas.js';
import { UsageError } from '../output/errors.js';
import { formatBytes } from '../output/output.js';
import { shownTime } from '../output/time.js';

type Summary = z.input<typeof backupSummarySchema>;
type Limits = Summary['limits'];

function limitsOf(project: LoadedProject, user: LoadedUser | null): Limits {
  return backupLimits(user?.config.backups, project.connection.local?.backups);
}

const plural = (n: number, one: string, many = `${one}s`): string => `${n} ${n === 1 ? one : many}`;

/**
 * After a sync or clone that applied something: what its transaction kept,
 * then the limits applied (keep_days, then max_size: oldest sets first). A
 * failure here never fails the sync that already happened: it is a warning.
 */
export async function afterSyncBackups(
  ctx: Ctx,
  project: LoadedProject,
  user: LoadedUser | null,
  r: SyncResult,
): Promise<Summary> {
  const limits = limitsOf(project, user);
  const summary: Summary = {
    kept: [],
    keptBytes: 0,
    conflictCopies: [...r.conflictBackups],
    removed: [],
    removedBytes: 0,
    total: { files: 0, bytes: 0 },
    limits,
  };
  try {
    if (r.transactionId !== null) {
      for (const s of await listBackups(project.root, r.transactionId)) {
        summary.kept.push(...s.files.map((f) => ({ path: f.path, original: f.original, size: f.size })));
        summary.keptBytes += s.bytes;
      }
    }
    const removed: BackupSet[] = [];
    if (limits.keepDays !== null) {
      const x = await removeBackups(project.root, { olderThanMs: limits.keepDays * 86_400_000 });
      removed.push(...x.sets);
      for (const l of x.leftovers) ctx.out.warn(`could not remove ${l.name}: ${l.error}`);
    }
    if (limits.maxBytes !== null) {
      const x = await removeBackups(project.root, { maxBytes: limits.maxBytes });
      removed.push(...x.sets);
      for (const l of x.leftovers) ctx.out.warn(`could not remove ${l.name}: ${l.error}`);
    }
    summary.removed = removed.map((s) => ({
      transactionId: s.transactionId,
      time: s.time,
      files: s.files.length,
      bytes: s.bytes,
    }));
    summary.removedBytes = removed.reduce((n, s) => n + s.bytes, 0);
    // a set this sync kept and the limits removed at once: not "kept" any more
    if (removed.some((s) => s.transactionId === r.transactionId)) {
      summary.kept = [];
      summary.keptBytes = 0;
    }
    const all = await listBackups(project.root);
    summary.total = {
      files: all.reduce((n, s) => n + s.files.length, 0),
      bytes: all.reduce((n, s) => n + s.bytes, 0),
    };
  } catch (e) {
    ctx.out.warn(`could not measure .dsg/backup: ${e instanceof Error ? e.message : String(e)}`);
  }
  return summary;
}

/** The summary's lines, after the sync's own. */
export function printBackupSummary(ctx: Ctx, b: z.output<typeof backupSummarySchema> | undefined): void {
  if (!b) return;
  if (b.kept.length > 0)
    ctx.out.line(
      `kept ${plural(b.kept.length, 'backup')} (${formatBytes(b.keptBytes)}) in .dsg/backup; remove with \`dsg clean --backups\``,
    );
  if (b.conflictCopies.length > 0) {
    ctx.out.line(`kept your ${plural(b.conflictCopies.length, 'version')} that lost the conflict beside the file:`);
    for (const c of b.conflictCopies) ctx.out.line(`  ${c}`);
  }
  if (b.removed.length > 0) {
    const why = [
      b.limits.keepDays !== null ? `keep_days ${b.limits.keepDays}` : null,
      b.limits.maxBytes !== null ? `max_size ${formatBytes(b.limits.maxBytes)}` : null,
    ]
      .filter(Boolean)
      .join(', ');
    const files = b.removed.reduce((n, s) => n + s.files, 0);
    ctx.out.line(
      `removed ${plural(files, 'older backup')} (${formatBytes(b.removedBytes)}) beyond your backups limits (${why}); .dsg/backup now holds ${formatBytes(b.total.bytes)}`,
    );
  }
}

/** `dsg backups`: every kept file, oldest first, and the totals. Reads only the working copy: no connection. */
export async function backupsCommand(ctx: Ctx): Promise<void> {
  const project = await loadProject(ctx);
  const user = await loadUserConfig(ctx.env);
  const sets = await listBackups(project.root);
  const doc = {
    command: 'backups' as const,
    project: project.root,
    backups: sets.flatMap((s) =>
      s.files.map((f) => ({
        path: f.path,
        original: f.original,
        size: f.size,
        transactionId: s.transactionId,
        time: s.time,
        pending: s.pending,
      })),
    ),
    files: sets.reduce((n, s) => n + s.files.length, 0),
    bytes: sets.reduce((n, s) => n + s.bytes, 0),
    sets: sets.length,
    limits: limitsOf(project, user),
  };
  ctx.out.result(backupsSchema, doc, (d) => {
    if (d.files === 0) {
      ctx.out.line('no backups in .dsg/backup');
      return;
    }
    for (const b of d.backups)
      ctx.out.line(
        `${shownTime(b.time)}  ${formatBytes(b.size).padStart(10)}  ${b.original}  ${ctx.out.c.dim(b.path)}${b.pending ? ' (sync not finished: kept)' : ''}`,
      );
    ctx.out.line(
      `\n${plural(d.files, 'backup')}, ${formatBytes(d.bytes)}, from ${plural(d.sets, 'sync')}; remove with \`dsg clean --backups [--older-than 7d]\``,
    );
  });
}

/**
 * `dsg clean --backups [--older-than D] [--dry-run]`: remove kept backups (all,
 * or those older than D). A bad duration is refused before anything is read.
 */
export async function cleanBackupsCommand(ctx: Ctx, o: { olderThan?: string; dryRun?: boolean }): Promise<void> {
  const olderThanMs = o.olderThan === undefined ? undefined : parseDuration(o.olderThan);
  const project = await loadProject(ctx);
  const dryRun = o.dryRun === true;
  const r = await removeBackups(project.root, { dryRun, ...(olderThanMs !== undefined ? { olderThanMs } : {}) });
  const items = r.sets.flatMap((s) =>
    s.files.map((f) => ({ kind: 'backup', path: path.join(project.root, f.path), size: f.size })),
  );
  ctx.out.result(
    cleanSchema,
    {
      command: 'clean',
      dryRun,
      target: 'backups',
      items,
      leftovers: r.leftovers,
      bytes: r.bytes,
      olderThan: o.olderThan ?? null,
    },
    (d) => {
      if (ctx.out.opts.verbose)
        for (const i of d.items) ctx.out.line(`${d.dryRun ? 'would remove' : 'removed'} ${i.path}`);
      for (const l of d.leftovers) ctx.out.line(`${ctx.out.c.yellow('could not remove')} ${l.name}: ${l.error}`);
      const age = d.olderThan ? ` older than ${d.olderThan}` : '';
      if (d.items.length === 0) ctx.out.line(`no backups${age} to remove`);
      else
        ctx.out.line(
          `${d.dryRun ? 'would remove' : 'removed'} ${plural(d.items.length, 'backup')}${age} (${formatBytes(d.bytes ?? 0)}) from .dsg/backup${d.dryRun ? ' (dry run: nothing removed)' : ''}`,
        );
    },
  );
}

/** Options of `dsg clean` that belong to the other mode: refused, so nothing is removed by a misread command. */
export function checkCleanMode(o: {
  backups?: boolean;
  olderThan?: string;
  maxAgeDays?: string;
  force?: boolean;
}): void {
  if (o.backups && (o.maxAgeDays !== undefined || o.force))
    throw new UsageError(
      '--max-age-days and --force belong to `dsg clean --target backups`, not to --backups',
      'Use `dsg clean --backups --older-than 30d` (or without --older-than: every backup).',
    );
  if (!o.backups && o.olderThan !== undefined)
    throw new UsageError('--older-than goes with --backups', 'Example: dsg clean --backups --older-than 7d');
}
