/*
 * How many of the files a sync replaced are kept in `.dsg/backup`: a personal
 * setting (`backups:` in the user config and/or `.dsg/config.local.yml`, the
 * local file winning key by key), never the team's .dsgconfig.yml — one
 * person's disk is not another's.
 */
import * as z from 'zod';
import { UsageError } from '../output/errors.js';

const UNITS: Record<string, number> = {
  B: 1,
  K: 1024,
  KIB: 1024,
  KB: 1000,
  M: 1024 ** 2,
  MIB: 1024 ** 2,
  MB: 1000 ** 2,
  G: 1024 ** 3,
  GIB: 1024 ** 3,
  GB: 1000 ** 3,
  T: 1024 ** 4,
  TIB: 1024 ** 4,
  TB: 1000 ** 4,
};

/** `2GiB`, `500 MB`, `1.5G` (K/M/G/T and KiB… are 1024-based, KB/MB/… 1000-based), or a number of bytes; null if unreadable. */
export function parseSize(v: string | number): number | null {
  if (typeof v === 'number') return Number.isSafeInteger(v) && v >= 0 ? v : null;
  const m = /^(\d+(?:\.\d+)?) ?([A-Za-z]*)$/.exec(v.trim());
  if (!m) return null;
  const unit = UNITS[(m[2] || 'B').toUpperCase()];
  if (unit === undefined) return null;
  const n = Math.floor(Number(m[1]) * unit);
  return Number.isSafeInteger(n) ? n : null;
}

const SIZE_ERROR = 'expected a size such as 2GiB, 500MB or a number of bytes';

export const backupSettingsSchema = z.strictObject({
  /** at most this many bytes in .dsg/backup after a sync: the oldest sets beyond it are removed */
  // kept as written (a rewrite of the file keeps `2GiB`); read with maxBytes()
  max_size: z
    .union([z.number(), z.string()], { error: SIZE_ERROR })
    .refine((v) => parseSize(v) !== null, { error: SIZE_ERROR })
    .optional(),
  /** sets older than this many days are removed after a sync */
  keep_days: z.number({ error: 'expected a number of days' }).min(0, { error: 'expected a number of days' }).optional(),
});

export type BackupSettings = z.output<typeof backupSettingsSchema>;

/** The limits in effect: the working copy's `.dsg/config.local.yml` over the user config, key by key. */
export function backupLimits(
  user: BackupSettings | undefined,
  local: BackupSettings | undefined,
): { maxBytes: number | null; keepDays: number | null } {
  const s = { ...user, ...local };
  return { maxBytes: s.max_size === undefined ? null : parseSize(s.max_size), keepDays: s.keep_days ?? null };
}

const DURATION_UNITS: Record<string, number> = { m: 60_000, h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000 };

/** `--older-than`: `30m`, `12h`, `7d`, `2w` → milliseconds; anything else is a usage error (nothing is removed). */
export function parseDuration(v: string): number {
  const m = /^(\d{1,6})([mhdw])$/.exec(v.trim());
  if (!m)
    throw new UsageError(
      `--older-than ${JSON.stringify(v)} is not a duration`,
      'Give a whole number and a unit: 30m (minutes), 12h, 7d or 2w, e.g. `dsg clean --backups --older-than 7d`.',
    );
  return Number(m[1]) * DURATION_UNITS[m[2]!]!;
}
