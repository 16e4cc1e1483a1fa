import cliProgress from 'cli-progress';
import pc from 'picocolors';
import type { z } from 'zod';
import type { ProgressEvent, ProgressListener } from '@dsg/contracts';
import { safeDeep, safeText } from '@dsg/contracts';

/** The global options every command accepts. */
export interface GlobalOptions {
  json: boolean;
  quiet: boolean;
  verbose: boolean;
  debug: boolean;
}

type Colors = ReturnType<typeof pc.createColors>;

export interface OutputStreams {
  stdout: NodeJS.WriteStream;
  stderr: NodeJS.WriteStream;
  env: NodeJS.ProcessEnv;
}

/**
 * Everything a command prints goes through here, so the rules hold in one
 * place: human text on stdout, diagnostics on stderr, exactly one JSON
 * document under --json, nothing but errors under --quiet, colors only on a
 * TTY without NO_COLOR, progress bars only on a TTY and never in --json/--quiet.
 * Text reaches a terminal with its control characters escaped (safeText):
 * every string of a result's human rendering, warnings, errors and the debug
 * log; the JSON document keeps the exact values.
 */
export class Output {
  readonly c: Colors;
  private readonly commandLog: string[] = [];
  private jsonWritten = false;

  constructor(
    readonly opts: GlobalOptions,
    private readonly io: OutputStreams = { stdout: process.stdout, stderr: process.stderr, env: process.env },
  ) {
    const noColor = io.env['NO_COLOR'] !== undefined && io.env['NO_COLOR'] !== '';
    this.c = pc.createColors(Boolean(io.stdout.isTTY) && !noColor && !opts.json);
  }

  /** A line of human output (suppressed under --json and --quiet). */
  line(s = ''): void {
    if (this.opts.json || this.opts.quiet) return;
    this.io.stdout.write(s + '\n');
  }

  /** Detail shown only with --verbose. */
  detail(s: string): void {
    if (this.opts.verbose) this.line(s);
  }

  /** A warning on stderr (kept under --json, dropped under --quiet). */
  warn(s: string): void {
    if (this.opts.quiet) return;
    const errColor = pc.createColors(Boolean(this.io.stderr.isTTY) && !this.io.env['NO_COLOR']);
    this.io.stderr.write(errColor.yellow('warning: ') + safeText(s) + '\n');
  }

  /** The --debug command log: what ran, where; printed to stderr as it happens. */
  log(s: string): void {
    this.commandLog.push(s);
    if (this.opts.debug) this.io.stderr.write(`[debug] ${safeText(s)}\n`);
  }

  /** Print a command's result: validated JSON under --json, else the human rendering. */
  result<S extends z.ZodType>(schema: S, data: z.input<S>, human: (d: z.output<S>) => void): void {
    const parsed = schema.parse(data);
    if (this.opts.json) this.json(parsed);
    else human(safeDeep(parsed));
  }

  /** Write the one JSON document (a second call is a bug: it would break consumers). */
  json(doc: unknown): void {
    if (this.jsonWritten) throw new Error('internal: a second JSON document was about to be written');
    this.jsonWritten = true;
    this.io.stdout.write(JSON.stringify(doc, null, 2) + '\n');
  }

  get wroteJson(): boolean {
    return this.jsonWritten;
  }

  /** stderr writer for errors (always printed, even under --quiet). */
  error(what: string, todo: string, stack?: string): void {
    const ec = pc.createColors(Boolean(this.io.stderr.isTTY) && !this.io.env['NO_COLOR']);
    this.io.stderr.write(`${ec.red('error:')} ${safeText(what)}\n${ec.dim('hint:')} ${safeText(todo)}\n`);
    if (stack && this.opts.debug) this.io.stderr.write(stack.split('\n').map(safeText).join('\n') + '\n');
  }

  /** Whether progress bars may be drawn. */
  get canShowProgress(): boolean {
    return !this.opts.json && !this.opts.quiet && Boolean(this.io.stderr.isTTY);
  }

  /**
   * A ProgressListener drawing one bar per phase (scan: files and files/s;
   * transfers: bytes, rate, ETA). A no-op when bars are not allowed.
   */
  progress(): ProgressReporter {
    return new ProgressReporter(this.canShowProgress ? this.io.stderr : null);
  }
}

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

export class ProgressReporter {
  private bar: cliProgress.SingleBar | null = null;
  private phase: ProgressEvent['phase'] | null = null;
  private started = 0;
  /** true once any bar was drawn (tests and the demo use it) */
  drew = false;

  constructor(private readonly stream: NodeJS.WriteStream | null) {}

  readonly listener: ProgressListener = (e) => this.on(e);

  private on(e: ProgressEvent): void {
    if (!this.stream) return;
    const bytesPhase = e.phase === 'upload' || e.phase === 'download';
    if (e.phase !== this.phase) {
      this.stop();
      this.phase = e.phase;
      this.started = Date.now();
      const label = e.phase.padEnd(8);
      this.bar = new cliProgress.SingleBar(
        {
          stream: this.stream,
          format: bytesPhase
            ? `${label} |{bar}| {percentage}% | {bytesDone}/{bytesTotal} | {rate} | ETA {etaText} | {files} files`
            : `${label} |{bar}| {value}/{total} files | {rate}`,
          hideCursor: false,
          clearOnComplete: false,
          fps: 10,
        },
        cliProgress.Presets.shades_classic,
      );
      this.drew = true;
      this.bar.start(this.total(e, bytesPhase), this.value(e, bytesPhase), this.payload(e, bytesPhase));
      return;
    }
    const total = this.total(e, bytesPhase);
    this.bar?.setTotal(total);
    this.bar?.update(this.value(e, bytesPhase), this.payload(e, bytesPhase));
  }

  private total(e: ProgressEvent, bytes: boolean): number {
    return Math.max(1, bytes ? (e.totalBytes ?? e.bytes) : (e.totalFiles ?? e.files));
  }
  private value(e: ProgressEvent, bytes: boolean): number {
    return bytes ? e.bytes : e.files;
  }
  private payload(e: ProgressEvent, bytes: boolean): Record<string, string | number> {
    const secs = Math.max(0.001, (Date.now() - this.started) / 1000);
    const total = e.totalBytes ?? e.bytes;
    const rate = e.bytes / secs;
    // our own ETA: cli-progress's eta_formatted prints garbage while its rate estimate is empty
    const eta = rate > 0 ? Math.max(0, Math.round((total - e.bytes) / rate)) : null;
    return bytes
      ? {
          etaText: eta === null ? '?' : eta >= 60 ? `${Math.floor(eta / 60)}m${eta % 60}s` : `${eta}s`,
          bytesDone: formatBytes(e.bytes),
          bytesTotal: formatBytes(e.totalBytes ?? e.bytes),
          rate: `${formatBytes(e.bytes / secs)}/s`,
          files: e.files,
        }
      : { rate: `${(e.files / secs).toFixed(0)} files/s` };
  }

  stop(): void {
    this.bar?.stop();
    this.bar = null;
    this.phase = null;
  }
}
