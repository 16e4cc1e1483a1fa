import { execa } from 'execa';

export interface ZfsRunResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/**
 * How `zfs` is executed. `argv(args)` is what actually runs (for error
 * reports); `run` never throws on a non-zero exit, the command layer decides.
 */
export interface ZfsRunner {
  argv(args: readonly string[]): string[];
  run(args: readonly string[]): Promise<ZfsRunResult>;
  /**
   * Make a freshly created dataset's root directory writable by this
   * process. Needed only when zfs runs as another user (sudo): the new
   * dataset's root then belongs to root.
   */
  prepareWorkPath?(dir: string): Promise<void>;
}

export interface ZfsRunnerOptions {
  /** run through `sudo -n` (non-interactive: fails instead of prompting) */
  sudo?: boolean;
  /** the zfs binary; default `zfs` from PATH */
  zfsPath?: string;
  /**
   * Runs the command elsewhere: gets the argv (with sudo when asked) and
   * returns the one to execute, e.g. ssh to a replica host with the argv
   * quoted for its shell.
   */
  wrap?: (argv: string[]) => string[];
}

/** A direct (root) or `sudo -n` runner over execa; argument arrays only, never a shell. */
export function createZfsRunner(options: ZfsRunnerOptions = {}): ZfsRunner {
  const zfs = options.zfsPath ?? 'zfs';
  const local = (args: readonly string[]): string[] => (options.sudo ? ['sudo', '-n', zfs, ...args] : [zfs, ...args]);
  const argv = (args: readonly string[]): string[] => (options.wrap ? options.wrap(local(args)) : local(args));
  const runner: ZfsRunner = {
    argv,
    async run(args) {
      const [file, ...rest] = argv(args);
      const r = await execa(file!, rest, { reject: false, stdin: 'ignore', encoding: 'utf8', shell: false });
      // execa reports a missing binary as exitCode undefined + failed
      const exitCode = typeof r.exitCode === 'number' ? r.exitCode : 127;
      const stderr = String(r.stderr ?? '') || (typeof r.exitCode !== 'number' ? String(r.message ?? '') : '');
      return { exitCode, stdout: String(r.stdout ?? ''), stderr };
    },
  };
  if (options.sudo && !options.wrap && typeof process.getuid === 'function' && process.getuid() !== 0) {
    const uid = process.getuid();
    const gid = process.getgid?.() ?? uid;
    runner.prepareWorkPath = async (dir) => {
      // numeric ids and an absolute path as separate argv elements: nothing to inject. -h: never
      // follow a symlink put at that name (the parent is group-writable); the sudo rule
      // in the README allows exactly this argv shape.
      const r = await execa('sudo', ['-n', 'chown', '-h', `${uid}:${gid}`, '--', dir], {
        reject: false,
        stdin: 'ignore',
      });
      if (r.exitCode !== 0)
        throw new Error(`sudo -n chown -h ${uid}:${gid} -- ${dir} failed: ${String(r.stderr ?? r.message ?? '')}`);
    };
  }
  return runner;
}
