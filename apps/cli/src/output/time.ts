import { formatTimestamp } from '@dsg/manifest';

/**
 * The time zone times are shown in: the user's (TZ, else the system's), as
 * `date` and `git log` show them. Manifests keep the zone they were written
 * in (the original dsg's America/Los_Angeles by default) and --json keeps
 * the stored text; only the human output converts.
 */
export function userTimeZone(): string {
  // once per process: list-files asked for it per entry, and each ask built a formatter
  return (zone ??= Intl.DateTimeFormat().resolvedOptions().timeZone);
}
let zone: string | undefined;

/** A stored timestamp (`2025-06-01T10:00:00-07:00`) as the same instant in the user's zone; text that is not a time, as it is. */
export function shownTime(stored: string, zone: string = userTimeZone()): string {
  const ms = Date.parse(stored);
  if (!Number.isFinite(ms)) return stored;
  try {
    return formatTimestamp(new Date(ms), zone);
  } catch {
    return stored;
  }
}
