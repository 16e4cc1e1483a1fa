import { describe, expect, it } from 'vitest';
import type { ProgressEvent } from '@dsg/contracts';
import {
  etaSeconds,
  formatClock,
  formatDuration,
  formatRate,
  MIN_RATE_SPAN_MS,
  ProgressReporter,
  RATE_WINDOW_MS,
  RateWindow,
  REDRAW_MS,
  renderTransfer,
  Throttle,
} from '../src/output/progress.js';

const MiB = 1024 * 1024;

describe('RateWindow', () => {
  it('says nothing over a near-zero span: no absurd rate from the first bytes', () => {
    const w = new RateWindow();
    expect(w.rate(0)).toBeNull();
    w.add(1000, 0);
    w.add(1001, 1536 * MiB); // 1.5 GiB "in 1 ms"
    expect(w.rate(1001)).toBeNull();
    expect(w.rate(1000 + MIN_RATE_SPAN_MS - 1)).toBeNull();
    expect(w.rate(1000 + MIN_RATE_SPAN_MS)).not.toBeNull();
  });

  it('measures the recent past, not the average since the start', () => {
    const w = new RateWindow();
    // 20 s at 10 MiB/s, then 10 s at 100 MiB/s
    let v = 0;
    for (let t = 0; t <= 20_000; t += 100) w.add(t, (v = (t / 1000) * 10 * MiB));
    expect(w.rate(20_000)! / MiB).toBeCloseTo(10, 5);
    for (let t = 20_100; t <= 30_000; t += 100) w.add(t, (v += 10 * MiB));
    // the window (8 s) holds only the fast part; since-the-start would say 40 MiB/s
    expect(w.rate(30_000)! / MiB).toBeCloseTo(100, 5);
  });

  it('falls while nothing moves, to 0 once the window holds no progress', () => {
    const w = new RateWindow();
    for (let t = 0; t <= 10_000; t += 100) w.add(t, t * 1000);
    const moving = w.rate(10_000)!;
    expect(moving).toBeCloseTo(1_000_000, 0);
    expect(w.rate(14_000)!).toBeLessThan(moving);
    expect(w.rate(10_000 + RATE_WINDOW_MS)).toBe(0);
    expect(w.rate(60_000)).toBe(0);
  });

  it('interpolates its base at the window start (no jump as old samples leave)', () => {
    const w = new RateWindow(1000, 100, 1);
    w.add(0, 0);
    w.add(2000, 2000); // 1 unit/ms, samples far apart
    expect(w.rate(2000)).toBeCloseTo(1000, 6);
  });

  it('keeps a bounded number of samples however many events arrive', () => {
    const w = new RateWindow();
    for (let t = 0; t < 600_000; t++) w.add(t, t);
    const n = (w as unknown as { samples: unknown[] }).samples.length;
    expect(n).toBeLessThanOrEqual(RATE_WINDOW_MS / 100 + 3);
    expect(w.rate(599_999)).toBeCloseTo(1000, 0);
  });
});

describe('ETA and formats', () => {
  it('an ETA only from a known, non-zero rate', () => {
    expect(etaSeconds(100, null)).toBeNull();
    expect(etaSeconds(100, 0)).toBeNull();
    expect(etaSeconds(100, 50)).toBe(2);
    expect(etaSeconds(-5, 50)).toBe(0);
    expect(formatDuration(null)).toBe('--');
    expect(formatDuration(42.4)).toBe('42s');
    expect(formatDuration(187)).toBe('3m07s');
    expect(formatDuration(2 * 3600 + 5 * 60)).toBe('2h05m');
    expect(formatDuration(1e9)).toBe('>99h');
    expect(formatClock(7_900)).toBe('0:07');
    expect(formatClock(3_723_000)).toBe('1:02:03');
  });

  it('a rate is a number only when something moves', () => {
    expect(formatRate(null)).toBe('-- B/s');
    expect(formatRate(0)).toBe('-- B/s');
    expect(formatRate(Infinity)).toBe('-- B/s');
    expect(formatRate(153.2 * MiB)).toBe('153.2 MiB/s');
  });

  it('a transfer line fits the terminal, with a bar when there is room', () => {
    const view = {
      phase: 'upload' as const,
      bytes: 512 * MiB,
      totalBytes: 1024 * MiB,
      files: 0,
      totalFiles: 1,
      rate: 128 * MiB,
      elapsedMs: 4_000,
    };
    const wide = renderTransfer(view, 120);
    expect(wide).toMatch(
      /^upload {3}\|█+░+\| {2}50% {2}512\.0 MiB\/1\.0 GiB {2}128\.0 MiB\/s {2}ETA 4s {2}0\/1 files {2}0:04$/,
    );
    expect(wide.length).toBeLessThan(120);
    for (const cols of [80, 60, 30]) expect(renderTransfer(view, cols).length).toBeLessThan(cols);
    // 80 columns: the file count gives way, the bar and the clock stay
    expect(renderTransfer(view, 80)).toMatch(/^upload {3}\|█{5}░{5}\| {2}50% .* {2}ETA 4s {2}0:04$/);
    expect(renderTransfer(view, 75)).toMatch(/^upload {3}\|█+░+\| {2}50% .* {2}ETA 4s$/);
    expect(renderTransfer(view, 50)).not.toMatch(/█/);
    // the bar keeps its width as the numbers change
    const widths = [0, 1, 900 * MiB, view.totalBytes].map(
      (bytes) =>
        /\|([█░]+)\|/.exec(renderTransfer({ ...view, bytes, rate: bytes ? 1023.9 * MiB : null }, 100))![1]!.length,
    );
    expect(new Set(widths).size).toBe(1);
    expect(renderTransfer({ ...view, bytes: view.totalBytes - 1 }, 120)).toContain(' 99% ');
    expect(renderTransfer({ ...view, bytes: 0, totalBytes: 0, files: 1, totalFiles: 2 }, 120)).toContain(' 50% ');
  });
});

describe('Throttle', () => {
  it('lets one draw through per interval', () => {
    const t = new Throttle(100);
    expect(t.ready(0)).toBe(true);
    t.mark(0);
    expect(t.ready(99)).toBe(false);
    expect(t.ready(100)).toBe(true);
  });
});

/** A fake terminal: what was written, and the lines as they stand after \r redraws. */
function terminal(columns = 120) {
  const writes: string[] = [];
  return {
    columns,
    writes,
    write: (s: string) => writes.push(s),
    draws: () => writes.filter((w) => w.startsWith('\r') && w.length > 4),
    screen: () =>
      writes
        .join('')
        .split('\n')
        .map((l) => l.split('\r').at(-1)!.replaceAll('\x1b[K', '')),
  };
}

const up = (bytes: number, extra: Partial<ProgressEvent> = {}): ProgressEvent => ({
  phase: 'upload',
  files: 0,
  totalFiles: 1,
  bytes,
  totalBytes: 1024 * MiB,
  ...extra,
});

describe('ProgressReporter', () => {
  it('draws at most once per REDRAW_MS however many events arrive, and only what changed', () => {
    const term = terminal();
    const clock = { t: 0 };
    const r = new ProgressReporter(term, { now: () => clock.t, timer: false });
    r.listener(up(0)); // the first event draws at once
    for (let i = 1; i <= 1000; i++) {
      clock.t = i; // 1000 events in 1 s
      r.listener(up(i * MiB));
    }
    expect(term.draws().length).toBeLessThanOrEqual(1000 / REDRAW_MS + 1);
    expect(term.draws().length).toBeGreaterThanOrEqual(1000 / REDRAW_MS);
    const before = term.writes.length;
    r.tick(); // nothing new, same clock: nothing written
    expect(term.writes.length).toBe(before);
    r.stop();
  });

  it('a waiting line still redraws its clock on the timer tick', () => {
    const term = terminal();
    const clock = { t: 0 };
    const r = new ProgressReporter(term, { now: () => clock.t, timer: false });
    r.listener(up(10 * MiB));
    clock.t = 1_500;
    r.tick();
    expect(term.draws().at(-1)).toMatch(/ {2}0:01/);
    r.stop();
  });

  it('rates leave out reused bytes: content copied on the server never reads as TiB/s', () => {
    const term = terminal();
    const clock = { t: 0 };
    const r = new ProgressReporter(term, { now: () => clock.t, timer: false });
    r.listener(up(0, { totalBytes: 1536 * MiB }));
    clock.t = 30_000; // a 30 s server-side copy, then the whole file at once
    r.listener(up(1536 * MiB, { totalBytes: 1536 * MiB, reusedBytes: 1536 * MiB, files: 1, path: 'big' }));
    r.stop();
    const last = term.screen().at(-2)!;
    expect(last).toContain('100%');
    expect(last).toContain('-- B/s');
    expect(term.writes.join('')).not.toMatch(/TiB\/s/);
  });

  it('one line per stage: scan, then upload/download on one line, then commit', () => {
    const term = terminal();
    const clock = { t: 0 };
    const r = new ProgressReporter(term, { now: () => clock.t, timer: false });
    r.listener({ phase: 'scan', files: 1, bytes: 0 });
    clock.t = 200;
    r.listener({ phase: 'hash', files: 2, hashedFiles: 0, bytes: 300 * MiB, path: 'big' });
    clock.t = 1_200;
    r.listener({ phase: 'scan', files: 2, hashedFiles: 2, bytes: 1024 * MiB });
    clock.t = 1_300;
    r.listener(up(0));
    clock.t = 2_300;
    r.listener(up(512 * MiB));
    clock.t = 3_300;
    r.listener({ phase: 'download', files: 1, totalFiles: 2, bytes: 1024 * MiB, totalBytes: 2048 * MiB });
    r.listener({ phase: 'commit', files: 2, totalFiles: 2, bytes: 2048 * MiB, totalBytes: 2048 * MiB });
    r.stop();
    const lines = term.screen();
    expect(lines).toHaveLength(4); // three finished lines and the empty rest
    expect(lines[0]).toMatch(/^scan {5}2 files {2}hashed 2 files, 1\.0 GiB {2}\d+\.\d MiB\/s {2}0:01$/);
    expect(lines[1]).toMatch(
      /^download \|█+░+\| {2}50% {2}1\.0 GiB\/2\.0 GiB {2}512\.0 MiB\/s {2}ETA 2s {2}1\/2 files/,
    );
    expect(lines[2]).toBe('commit   0:00');
    expect(lines[3]).toBe('');
  });

  it('interrupt() clears the line for other text; the next draw brings it back', () => {
    const term = terminal();
    const clock = { t: 0 };
    const r = new ProgressReporter(term, { now: () => clock.t, timer: false });
    r.listener(up(MiB));
    r.interrupt();
    expect(term.writes.at(-1)).toBe('\r\x1b[K');
    r.interrupt(); // nothing drawn now: nothing to clear
    expect(term.writes.filter((w) => w === '\r\x1b[K')).toHaveLength(1);
    clock.t = REDRAW_MS;
    r.listener(up(MiB));
    expect(term.writes.at(-1)).toMatch(/^\rupload/);
    r.stop();
  });

  it('draws nothing without a stream (a pipe, --json, --quiet)', () => {
    const r = new ProgressReporter(null, { timer: false });
    r.listener(up(MiB));
    r.stop();
    expect(r.drew).toBe(false);
  });
});
