import { ValidationError } from '@dsg/contracts';

export const DEFAULT_TIME_ZONE = 'America/Los_Angeles';

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatterFor(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    });
    formatters.set(timeZone, f);
  }
  return f;
}

const pad = (n: number, w = 2): string => String(n).padStart(w, '0');

/**
 * ISO 8601 with seconds and a numeric offset in `timeZone`, like Python's
 * `datetime.isoformat(timespec="seconds")` in the ancestor:
 * `2025-06-01T10:11:12-07:00`. Sub-second parts are truncated.
 */
/**
 * The whole second a file's mtime is recorded as, the way the original gets
 * it: Python's `datetime.fromtimestamp(st_mtime)` first rounds to
 * microseconds, half to even, then the seconds are written. So a file at
 * x.9999997 s is recorded as x+1 s (flooring gave x, and the two tools then
 * disagreed on every such file).
 */
export function recordedMtimeMs(mtimeMs: number): number {
  const sec = Math.floor(mtimeMs / 1000);
  const fracUs = (mtimeMs - sec * 1000) * 1000; // in [0, 1e6)
  let us = Math.round(fracUs);
  if (Math.abs(fracUs - Math.trunc(fracUs)) === 0.5) us = 2 * Math.round(fracUs / 2);
  return (us >= 1_000_000 ? sec + 1 : sec) * 1000;
}

export function formatTimestamp(date: Date, timeZone: string = DEFAULT_TIME_ZONE): string {
  const ms = Math.floor(date.getTime() / 1000) * 1000;
  if (!Number.isFinite(ms)) throw new ValidationError('invalid date', { field: 'timestamp' });
  const offMin = offsetMinutes(ms, timeZone);
  const local = new Date(ms + offMin * 60000);
  const sign = offMin < 0 ? '-' : '+';
  const abs = Math.abs(offMin);
  return (
    `${pad(local.getUTCFullYear(), 4)}-${pad(local.getUTCMonth() + 1)}-${pad(local.getUTCDate())}` +
    `T${pad(local.getUTCHours())}:${pad(local.getUTCMinutes())}:${pad(local.getUTCSeconds())}` +
    `${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`
  );
}

/*
 * UTC offset of `timeZone` at an instant, via Intl (slow: ~5 µs), memoized
 * per zone and 15-minute slot: every instant of a slot shares the offset its
 * first and last second have. Most transitions fall on quarter hours, but
 * not all (St. John's changed at 00:01 local until 2011): a slot whose ends
 * differ holds a transition, and its instants are asked one by one. Scanning
 * 100k files with similar mtimes then costs a handful of Intl calls.
 */
const SLOT_MS = 15 * 60 * 1000;
const offsetCache = new Map<string, Map<number, number>>();

function offsetMinutes(ms: number, timeZone: string): number {
  let zone = offsetCache.get(timeZone);
  if (!zone) offsetCache.set(timeZone, (zone = new Map<number, number>()));
  const slot = Math.floor(ms / SLOT_MS);
  let off = zone.get(slot);
  if (off === undefined) {
    const first = intlOffsetMinutes(slot * SLOT_MS, timeZone);
    const last = intlOffsetMinutes(slot * SLOT_MS + SLOT_MS - 1000, timeZone);
    off = first === last ? first : Number.NaN; // NaN: a transition inside
    if (zone.size > 100_000) zone.clear();
    zone.set(slot, off);
  }
  return Number.isNaN(off) ? intlOffsetMinutes(ms, timeZone) : off;
}

function intlOffsetMinutes(ms: number, timeZone: string): number {
  const parts: Record<string, string> = {};
  for (const p of formatterFor(timeZone).formatToParts(new Date(ms))) parts[p.type] = p.value;
  const y = Number(parts['year']);
  const local = Date.UTC(
    y,
    Number(parts['month']) - 1,
    Number(parts['day']),
    Number(parts['hour']),
    Number(parts['minute']),
    Number(parts['second']),
  );
  return Math.round((local - ms) / 60000);
}

const TS_RE = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

/** True when `text` is an ISO 8601 timestamp with an explicit offset (or Z). */
export function isTimestamp(text: string): boolean {
  return TS_RE.test(text) && !Number.isNaN(Date.parse(text));
}

/** Parse a manifest timestamp into an instant; compare instants, never strings. */
export function parseTimestamp(text: string): Date {
  if (!isTimestamp(text))
    throw new ValidationError(`not an ISO 8601 timestamp with offset: ${JSON.stringify(text)}`, { field: 'timestamp' });
  return new Date(Date.parse(text));
}
