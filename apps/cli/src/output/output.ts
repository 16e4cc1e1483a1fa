import pc from 'picocolors';
import type { z } from 'zod';
import { safeDeep, safeText } from '@dsg/contracts';
import { ProgressReporter } from './progress.js';

export { formatBytes, ProgressReporter } from './progress.js';

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
  /** the progress line on the terminal, cleared before any other text is written there */
  private bar: ProgressReporter | null = null;

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
    this.bar?.interrupt();
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
    this.bar?.interrupt();
    this.io.stderr.write(errColor.yellow('warning: ') + safeText(s) + '\n');
  }

  /** The --debug command log: what ran, where; printed to stderr as it happens. */
  log(s: string): void {
    this.commandLog.push(s);
    if (!this.opts.debug) return;
    this.bar?.interrupt();
    this.io.stderr.write(`[debug] ${safeText(s)}\n`);
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
    this.bar?.interrupt();
    this.io.stderr.write(`${ec.red('error:')} ${safeText(what)}\n${ec.dim('hint:')} ${safeText(todo)}\n`);
    if (stack && this.opts.debug) this.io.stderr.write(stack.split('\n').map(safeText).join('\n') + '\n');
  }

  /** Whether progress bars may be drawn. */
  get canShowProgress(): boolean {
    // a dumb terminal cannot redraw a line in place
    return !this.opts.json && !this.opts.quiet && Boolean(this.io.stderr.isTTY) && this.io.env['TERM'] !== 'dumb';
  }

  /**
   * A ProgressListener drawing one progress line per stage on stderr (see
   * ProgressReporter). A no-op when progress may not be shown.
   */
  progress(): ProgressReporter {
    const bar = new ProgressReporter(this.canShowProgress ? this.io.stderr : null);
    this.bar = bar;
    return bar;
  }
}
