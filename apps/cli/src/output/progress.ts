/*
 * Progress lines on a terminal, written here rather than with cli-progress
 * (used before): what a transfer bar must show is mostly ours to compute —
 * a rate over a recent time window (cli-progress averages over its last N
 * updates, so a burst of small files or one server-side copy of 1.5 GiB read
 * as TiB/s), content placed without the wire kept out of the rate, "--"
 * while no rate is measurable, and a clock that ticks while a stage waits.
 * What is left to draw is one line, throttled and cut to the terminal's
 * width (this file's last third).
 */
import type { ProgressEvent, ProgressListener } from '@dsg/contracts';

/** How often a line may be redrawn on a terminal: 10/s looks continuous and costs nothing. */
export const REDRAW_MS = 100;
/** Rates and ETAs are measured over this recent past, not since the start (a stall shows, a burst fades). */
export const RATE_WINDOW_MS = 8_000;
/** No rate is shown over a shorter span: a few bytes over a few ms would read as an absurd rate. */
export const MIN_RATE_SPAN_MS = 250;

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(1)} ${units[u]}`;
}

/** bytes/s as printed; unknown (null) or nothing moving reads `-- B/s`, never a made-up number. */
export function formatRate(rate: number | null): string {
  return rate !== null && rate > 0 && Number.isFinite(rate) ? `${formatBytes(Math.round(rate))}/s` : '-- B/s';
}

/** Seconds as `42s`, `3m07s`, `2h05m`; unknown (null) as `--`. */
export function formatDuration(secs: number | null): string {
  if (secs === null || !Number.isFinite(secs) || secs < 0) return '--';
  const s = Math.round(secs);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  if (s >= 100 * 3600) return '>99h';
  return `${Math.floor(s / 3600)}h${String(Math.floor(s / 60) % 60).padStart(2, '0')}m`;
}

/** Elapsed time as a clock, `0:07`, `12:34`, `1:02:03`: it ticks, so a line that waits still looks alive. */
export function formatClock(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const mm = String(Math.floor(s / 60) % 60);
  const ss = String(s % 60).padStart(2, '0');
  return s >= 3600 ? `${Math.floor(s / 3600)}:${mm.padStart(2, '0')}:${ss}` : `${mm}:${ss}`;
}

/**
 * A moving-window rate over a growing counter: samples (time, value), the
 * rate is the change over the last `windowMs` up to now. Up to now, not up to the
 * last sample: when nothing moves the rate falls, instead of freezing at its
 * last value. Null while the span measured is shorter than `minSpanMs`.
 */
export class RateWindow {
  private readonly samples: { t: number; v: number }[] = [];

  constructor(
    private readonly windowMs = RATE_WINDOW_MS,
    private readonly minSpanMs = MIN_RATE_SPAN_MS,
    /** samples closer together than this are merged (bounds the memory to windowMs / mergeMs) */
    private readonly mergeMs = 100,
  ) {}

  add(t: number, v: number): void {
    const last = this.samples.at(-1);
    if (last && this.samples.length > 1 && t - this.samples.at(-2)!.t < this.mergeMs) {
      last.t = t;
      last.v = v;
    } else this.samples.push({ t, v });
    // keep one sample at or before the window's start: the base the change is measured from
    while (this.samples.length > 2 && this.samples[1]!.t <= t - this.windowMs) this.samples.shift();
  }

  /** units per second over the window ending at `now`; null when the span is too short to say */
  rate(now: number): number | null {
    const last = this.samples.at(-1);
    if (!last) return null;
    // the base: the newest sample at or before the window's start, else the oldest one
    const start = now - this.windowMs;
    let base = this.samples[0]!;
    for (const s of this.samples) {
      if (s.t > start) break;
      base = s;
    }
    const span = now - Math.max(base.t, start);
    if (span < this.minSpanMs) return null;
    // a base before the window: interpolate its value at the window's start
    let v0 = base.v;
    if (base.t < start) {
      const next = this.samples[this.samples.indexOf(base) + 1];
      if (next) v0 = base.v + ((next.v - base.v) * (start - base.t)) / (next.t - base.t);
    }
    return Math.max(0, ((last.v - v0) * 1000) / span);
  }
}

/** Seconds left at `rate` units/s; null when the rate is unknown or nothing moves. */
export function etaSeconds(remaining: number, rate: number | null): number | null {
  if (rate === null || !(rate > 0)) return null;
  return Math.max(0, remaining) / rate;
}

/** At most one draw per `intervalMs` (an injected clock in tests). */
export class Throttle {
  private last = Number.NEGATIVE_INFINITY;
  constructor(readonly intervalMs = REDRAW_MS) {}
  ready(now: number): boolean {
    return now - this.last >= this.intervalMs;
  }
  mark(now: number): void {
    this.last = now;
  }
}

const FULL = '\u2588';
const MIN_BAR = 10;
const MAX_BAR = 30;
const EMPTY = '\u2591';

export function bar(fraction: number, width: number): string {
  const n = Math.max(0, Math.min(width, Math.floor(Math.max(0, Math.min(1, fraction)) * width)));
  return FULL.repeat(n) + EMPTY.repeat(width - n);
}

export interface TransferView {
  phase: 'upload' | 'download';
  bytes: number;
  totalBytes: number;
  files: number;
  totalFiles: number;
  rate: number | null;
  elapsedMs: number;
}

/** Whole percent done, floored: 100% only once everything is there. */
export function percentOf(done: number, total: number): number {
  if (total <= 0) return 100;
  return Math.max(0, Math.min(100, Math.floor((done / total) * 100)));
}

/**
 * `upload   |███░░░|  42%  430.1 MiB/1.0 GiB  153.2 MiB/s  ETA 4s  3/10 files  0:03`, fitted to
 * `columns`. Which parts show and how wide the bar is are decided from the parts' widest forms (fixed
 * for a line: its totals do not change), so the bar does not jitter as the numbers change; on a narrow
 * terminal the file count gives way first, then the clock, then the bar.
 */
export function renderTransfer(v: TransferView, columns: number): string {
  // transfers of links only (no bytes) go by files
  const byFiles = v.totalBytes <= 0;
  const pct = byFiles ? percentOf(v.files, v.totalFiles) : percentOf(v.bytes, v.totalBytes);
  const fraction = byFiles ? v.files / Math.max(1, v.totalFiles) : v.bytes / v.totalBytes;
  const total = formatBytes(v.totalBytes);
  const part = (text: string, widest: number) => ({ text, widest });
  const needed = [
    part(`${pct}%`.padStart(4), 4),
    part(`${formatBytes(v.bytes)}/${total}`, '1023.9 MiB/'.length + total.length),
    part(formatRate(v.rate), '1023.9 MiB/s'.length),
    part(`ETA ${formatDuration(byFiles ? null : etaSeconds(v.totalBytes - v.bytes, v.rate))}`, 'ETA 59m59s'.length),
  ];
  const files = part(`${v.files}/${v.totalFiles} files`, `${v.totalFiles}/${v.totalFiles} files`.length);
  const clock = part(formatClock(v.elapsedMs), '59:59'.length);
  const label = v.phase.padEnd(8);
  const SEP = '  ';
  const choices = [[...needed, files, clock], [...needed, clock], needed];
  for (const parts of choices) {
    const widest = parts.reduce((n, p) => n + p.widest, 0) + SEP.length * (parts.length - 1);
    const room = columns - 1 - label.length - ' || '.length - widest;
    if (room >= MIN_BAR) {
      const tail = parts.map((p) => p.text).join(SEP);
      return fit(`${label} |${bar(fraction, Math.min(MAX_BAR, room))}| ${tail}`, columns);
    }
  }
  return fit(`${label} ${needed.map((p) => p.text).join(SEP)}`, columns);
}

export interface ScanView {
  files: number;
  hashedFiles: number;
  hashedBytes: number;
  rate: number | null;
  elapsedMs: number;
}

/** `scan     1234 files  hashed 3 files, 1.2 GiB  310.0 MiB/s  0:04` (no total is known while walking). */
export function renderScan(v: ScanView, columns: number): string {
  const parts = [`${v.files} files`];
  if (v.hashedBytes > 0 || v.hashedFiles > 0) {
    parts.push(`hashed ${v.hashedFiles} files, ${formatBytes(v.hashedBytes)}`, formatRate(v.rate));
  }
  parts.push(formatClock(v.elapsedMs));
  return fit(`${'scan'.padEnd(8)} ${parts.join('  ')}`, columns);
}

/** A line without a bar (deletes, the commit). */
export function renderPlain(label: string, text: string, elapsedMs: number, columns: number): string {
  return fit(`${label.padEnd(8)} ${text ? `${text}  ` : ''}${formatClock(elapsedMs)}`, columns);
}

/** Never wider than the terminal: a wrapped line could not be redrawn in place. */
function fit(line: string, columns: number): string {
  return line.length < columns ? line : line.slice(0, Math.max(0, columns - 1));
}

type Group = 'scan' | 'transfer' | 'delete' | 'commit';
const groupOf = (p: ProgressEvent['phase']): Group =>
  p === 'scan' || p === 'hash' ? 'scan' : p === 'upload' || p === 'download' ? 'transfer' : p;

/** What a line shows, updated by events and drawn on the throttle. */
interface LineState {
  group: Group;
  startedAt: number;
  window: RateWindow;
  last: ProgressEvent;
  deletes: number;
}

export interface ProgressTarget {
  write(s: string): unknown;
  columns?: number;
}

export interface ReporterOptions {
  /** the clock (tests inject one) */
  now?: () => number;
  /** redraw a waiting line on a timer (so its clock and rate move with no event); tests call tick() instead */
  timer?: boolean;
  redrawMs?: number;
}

/**
 * The progress lines of one command on a terminal: one line per stage (scan,
 * transfer, delete, commit), redrawn in place at most every REDRAW_MS and only
 * when its text changed, finished with a newline when the next stage begins or
 * the command ends. Transfer bars go by bytes as they flow; the rate and ETA
 * come from a moving window over the bytes that crossed the wire (reused
 * bytes move the bar but not the rate). A null stream draws nothing.
 */
export class ProgressReporter {
  /** true once any line was drawn (tests and the demo use it) */
  drew = false;
  private state: LineState | null = null;
  private drawn = ''; // the text on the terminal's current line ('' when none)
  private readonly throttle: Throttle;
  private readonly now: () => number;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly stream: ProgressTarget | null,
    private readonly opts: ReporterOptions = {},
  ) {
    this.now = opts.now ?? Date.now;
    this.throttle = new Throttle(opts.redrawMs ?? REDRAW_MS);
  }

  readonly listener: ProgressListener = (e) => this.on(e);

  private on(e: ProgressEvent): void {
    if (!this.stream) return;
    const now = this.now();
    const group = groupOf(e.phase);
    let first = false;
    if (this.state?.group !== group) {
      this.finishLine();
      this.state = { group, startedAt: now, window: new RateWindow(), last: e, deletes: 0 };
      first = true;
      if (this.opts.timer !== false && !this.timer) {
        this.timer = setInterval(() => this.tick(), this.throttle.intervalMs);
        this.timer.unref();
      }
    }
    const s = this.state;
    s.last = e;
    if (group === 'delete') s.deletes++;
    s.window.add(now, e.bytes - (e.reusedBytes ?? 0));
    this.draw(now, first);
  }

  /** Redraw if due (the timer calls it: a line with no events still shows its clock and falling rate). */
  tick(): void {
    this.draw(this.now(), false);
  }

  /** Clear the line being drawn, so a warning or prompt starts at the margin; the next draw brings it back. */
  interrupt(): void {
    if (!this.stream || !this.drawn) return;
    this.stream.write('\r\x1b[K');
    this.drawn = '';
  }

  private draw(now: number, force: boolean): void {
    if (!this.stream || !this.state) return;
    if (!force && !this.throttle.ready(now)) return;
    const text = this.render(this.state, now);
    if (text === this.drawn) return;
    this.stream.write(`\r${text}\x1b[K`);
    this.drawn = text;
    this.drew = true;
    this.throttle.mark(now);
  }

  private render(s: LineState, now: number): string {
    const columns = this.stream?.columns || 80;
    const e = s.last;
    const elapsedMs = now - s.startedAt;
    const rate = s.window.rate(now);
    switch (s.group) {
      case 'scan':
        return renderScan(
          { files: e.files, hashedFiles: e.hashedFiles ?? 0, hashedBytes: e.bytes, rate, elapsedMs },
          columns,
        );
      case 'transfer':
        return renderTransfer(
          {
            phase: e.phase === 'download' ? 'download' : 'upload',
            bytes: e.bytes,
            totalBytes: e.totalBytes ?? e.bytes,
            files: e.files,
            totalFiles: e.totalFiles ?? e.files,
            rate,
            elapsedMs,
          },
          columns,
        );
      case 'delete':
        return renderPlain('delete', `${s.deletes} files`, elapsedMs, columns);
      case 'commit':
        return renderPlain('commit', '', elapsedMs, columns);
    }
  }

  /** The current line's final state, then a newline. */
  private finishLine(): void {
    if (!this.stream || !this.state) return;
    this.draw(this.now(), true);
    if (this.drawn) this.stream.write('\n');
    this.drawn = '';
    this.state = null;
  }

  stop(): void {
    this.finishLine();
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
