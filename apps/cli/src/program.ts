import { Command, CommanderError, Option } from 'commander';
import { EXIT, UsageError, describeError, exitCodeFor, serializeError } from './output/errors.js';
import { Output, type GlobalOptions } from './output/output.js';
import type { Ctx } from './context.js';
import { VERSION } from './version.js';
import { commandSpecs, type CommandSpec } from './commands/registry.js';
import { bashCompletion, zshCompletion } from './completion.js';
import { requireProjectRoot } from './config/project-root.js';

export const EXIT_CODES_HELP = `
Exit codes:
  0  success
  1  error (what happened and what to do are printed on stderr)
  2  usage or configuration error
  3  conflicts (see conflicts.txt, then \`dsg sync --continue\`)
  4  repository locked by another sync (the message names holder, host, since when)
`;

export interface RunOptions {
  argv: string[];
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  stdout?: NodeJS.WriteStream;
  stderr?: NodeJS.WriteStream;
}

function globalsOf(cmd: Command): GlobalOptions {
  const o = cmd.optsWithGlobals<Partial<GlobalOptions>>();
  return { json: Boolean(o.json), quiet: Boolean(o.quiet), verbose: Boolean(o.verbose), debug: Boolean(o.debug) };
}

/** Build the commander program; `onResult` receives each command's exit code. */
export function buildProgram(o: RunOptions, onResult: (code: number, out: Output | null) => void): Command {
  const io = { stdout: o.stdout ?? process.stdout, stderr: o.stderr ?? process.stderr, env: o.env ?? process.env };
  const program = new Command('dsg')
    .description('dsg: keep the data directories of a project in sync with a versioned repository (ZFS or POSIX)')
    .version(VERSION, '--version', 'print the version')
    .option('--json', 'print exactly one JSON document on stdout (see the README for shapes)')
    .option('-q, --quiet', 'print nothing but errors')
    .option('-v, --verbose', 'more detail (e.g. the sync state of each path)')
    .option('--debug', 'on error, print the stack trace and the command log')
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText(
      'after',
      `\nExample:\n  $ dsg init --host localhost --repo-type posix --repo-path /srv/dsg\n  $ dsg sync -m "new extracts"\n${EXIT_CODES_HELP}`,
    )
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
    });

  for (const spec of commandSpecs) addCommand(program, spec, o, io, onResult);
  program
    .command('completion')
    .description('print a shell completion script (bash or zsh)')
    .argument('<shell>', 'bash or zsh')
    .addHelpText(
      'after',
      `\nExample:\n  $ dsg completion bash > ~/.local/share/bash-completion/completions/dsg\n  $ dsg completion zsh > "\${fpath[1]}/_dsg"\n${EXIT_CODES_HELP}`,
    )
    .action((shell: string) => {
      if (shell !== 'bash' && shell !== 'zsh') {
        const out = new Output(globalsOf(program), io);
        onResult(
          reportError(
            out,
            new UsageError(
              `unknown shell ${JSON.stringify(shell)}`,
              'Use `dsg completion bash` or `dsg completion zsh`.',
            ),
          ),
          out,
        );
        return;
      }
      io.stdout.write(shell === 'bash' ? bashCompletion(program) : zshCompletion(program));
      onResult(EXIT.ok, null);
    });
  return program;
}

function addCommand(
  program: Command,
  spec: CommandSpec,
  o: RunOptions,
  io: { stdout: NodeJS.WriteStream; stderr: NodeJS.WriteStream; env: NodeJS.ProcessEnv },
  onResult: (code: number, out: Output | null) => void,
): void {
  const cmd = program.command(spec.name).description(spec.description);
  for (const a of spec.args ?? []) cmd.argument(a.name, a.description);
  for (const opt of spec.options ?? []) {
    const option = new Option(opt.flags, opt.description);
    if (opt.choices) option.choices(opt.choices);
    if (opt.default !== undefined) option.default(opt.default);
    if (opt.collect) option.argParser((v: string, prev: string[] | undefined) => [...(prev ?? []), v]);
    cmd.addOption(option);
  }
  cmd.addHelpText('after', `\nExample:\n${spec.examples.map((e) => `  $ ${e}`).join('\n')}\n${EXIT_CODES_HELP}`);
  cmd.action(async (...raw: unknown[]) => {
    const self = raw[raw.length - 1] as Command;
    const out = new Output(globalsOf(self), io);
    const ctx: Ctx = {
      out,
      cwd: o.cwd ?? process.cwd(),
      env: io.env,
      interactive: Boolean(process.stdin.isTTY) && Boolean(io.stdout.isTTY),
      stdout: io.stdout,
    };
    out.log(`dsg ${VERSION}: ${spec.name} ${self.args.join(' ')}`);
    const positional = raw.slice(0, -2);
    const opts = self.opts<Record<string, unknown>>();
    try {
      if (spec.inProject) await requireProjectRoot(ctx.cwd);
      const code = await spec.run(ctx, positional, opts);
      onResult(code ?? EXIT.ok, out);
    } catch (err) {
      onResult(reportError(out, err), out);
    }
  });
}

/** Print an error the documented way and return its exit code. */
export function reportError(out: Output, err: unknown): number {
  const code = exitCodeFor(err);
  const { what, todo } = describeError(err);
  out.error(what, todo, err instanceof Error ? err.stack : undefined);
  if (out.opts.debug) out.log(`exit ${code}`);
  if (out.opts.json && !out.wroteJson) out.json({ error: serializeError(err), exitCode: code });
  return code;
}

/** Run the CLI with `argv` (without node and script); resolves to the exit code. */
export async function runCli(o: RunOptions): Promise<number> {
  let result: number | null = null;
  const program = buildProgram(o, (code) => {
    result = code;
  });
  const wantsJson = o.argv.includes('--json');
  try {
    await program.parseAsync(o.argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') {
        return EXIT.ok;
      }
      // commander already printed its message on stderr; add the hint line and the JSON document.
      const usage = new UsageError(err.message.replace(/^error: /, ''));
      const stderr = o.stderr ?? process.stderr;
      stderr.write(`hint: ${usage.recoveryHint}\n`);
      if (wantsJson)
        (o.stdout ?? process.stdout).write(
          JSON.stringify({ error: serializeError(usage), exitCode: EXIT.usage }, null, 2) + '\n',
        );
      return EXIT.usage;
    }
    throw err;
  }
  if (result === null) {
    // no subcommand: show help on stderr, usage exit code (like git with no command)
    program.outputHelp({ error: true });
    return EXIT.usage;
  }
  return result;
}
