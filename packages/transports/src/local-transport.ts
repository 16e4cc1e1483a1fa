import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, readFileSync, type WriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { TransportError, type Transport } from '@dsg/contracts';
import type { AgentChannel, ChannelTransport } from './client.js';
import type { AgentServer } from './server.js';

export type LocalTransportOptions =
  | { mode: 'in-process'; server: AgentServer }
  | {
      mode: 'child';
      command: string[];
      env?: NodeJS.ProcessEnv;
      /** ms to wait for exit at end() before SIGTERM */ exitTimeoutMs?: number;
    };

/**
 * A repository on this machine: the agent runs in this process (a duplex
 * pair into an AgentServer) or as a child process over stdio. begin() makes
 * a temp dir (the child's cwd and its stderr log); end() closes the channel,
 * waits for the agent to finish its session cleanup, and removes the dir.
 */
export class LocalTransport implements Transport, ChannelTransport {
  private ch: AgentChannel | null = null;
  private tmp: string | null = null;
  private child: ChildProcess | null = null;
  private childExit: Promise<void> | null = null;
  private serving: Promise<void> | null = null;
  private log: WriteStream | null = null;
  private starting: Promise<void> | null = null;

  constructor(private readonly o: LocalTransportOptions) {
    if (
      o.mode === 'child' &&
      (!Array.isArray(o.command) ||
        o.command.length === 0 ||
        o.command.some((a) => typeof a !== 'string' || a.includes('\0')))
    ) {
      throw new TransportError('LocalTransport child mode needs a non-empty command vector without NUL bytes', {
        recoveryHint: 'Pass the agent command as an argument array, e.g. ["node", "/path/dsg-agent.mjs", "serve", …].',
      });
    }
  }

  /** The agent's stderr log (child mode), while the transport is open. */
  get stderrFile(): string | null {
    return this.tmp ? join(this.tmp, 'agent-stderr.log') : null;
  }

  begin(): Promise<void> {
    this.starting ??= this.start().catch(async (e: unknown) => {
      await this.end();
      throw e;
    });
    return this.starting;
  }

  private async start(): Promise<void> {
    this.tmp = await mkdtemp(join(tmpdir(), 'dsg-local-'));
    if (this.o.mode === 'in-process') {
      // Chunks pass as written (object mode): a byte stream's reader gets what is buffered joined into
      // one new buffer, a copy of every payload the frames took care not to copy. A direction holds at
      // most 4 chunks on its writable side and 4 on its readable side (a header is a chunk; a payload
      // at most DATA_CHUNK, 256 KiB, in practice) before the writer waits for drain.
      const toServer = new PassThrough({ objectMode: true, highWaterMark: 4 });
      const toClient = new PassThrough({ objectMode: true, highWaterMark: 4 });
      this.serving = this.o.server.serve(toServer, toClient);
      this.ch = { input: toClient, output: toServer };
      return;
    }
    const [cmd, ...args] = this.o.command;
    const logFile = this.stderrFile!;
    this.log = createWriteStream(logFile);
    const child = spawn(cmd!, args, { cwd: this.tmp, env: this.o.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    this.child = child;
    child.stderr.pipe(this.log);
    let exitInfo = '';
    this.childExit = new Promise<void>((resolve) => {
      child.once('close', (code, signal) => {
        exitInfo = signal ? `agent killed by ${signal}` : `agent exited with code ${code}`;
        resolve();
      });
    });
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', (e) =>
        reject(
          new TransportError(`could not start the agent ${JSON.stringify(cmd)}: ${e.message}`, {
            cause: e,
            recoveryHint: 'Check the agent command (is node on PATH? is the path right?).',
          }),
        ),
      );
    });
    this.ch = {
      input: child.stdout,
      output: child.stdin,
      describeClose: () => {
        let tail = '';
        try {
          tail = readFileSync(logFile, 'utf8').trim().split('\n').slice(-3).join(' | ');
        } catch {
          /* no log */
        }
        return [exitInfo, tail].filter(Boolean).join('; ');
      },
      // a stalled child never answers SIGTERM in time (a stopped one not at all); its lock is stale once it is gone
      abort: () => {
        child.stdout.destroy();
        child.stdin.destroy();
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      },
    };
  }

  channel(): AgentChannel {
    if (!this.ch) throw new TransportError('the transport is not open', { recoveryHint: 'Call begin() first.' });
    return this.ch;
  }

  async end(): Promise<void> {
    const ch = this.ch;
    this.ch = null;
    this.starting = null;
    if (ch) {
      ch.output.end();
      // Discard whatever the agent still sends, even if a reader stopped
      // midway (an abandoned download): its writes must drain so its
      // session can finish rolling back and unlocking.
      const input = ch.input as NodeJS.ReadableStream & { removeAllListeners(e: string): unknown };
      input.removeAllListeners('readable');
      input.resume();
    }
    if (this.serving) {
      await this.serving.catch(() => {});
      this.serving = null;
    }
    if (this.child) {
      const child = this.child;
      this.child = null;
      const timeout = this.o.mode === 'child' ? (this.o.exitTimeoutMs ?? 30_000) : 0;
      const exited = await Promise.race([
        this.childExit!.then(() => true),
        new Promise<boolean>((r) => setTimeout(() => r(false), timeout).unref()),
      ]);
      if (!exited) {
        child.kill('SIGTERM');
        await Promise.race([this.childExit, new Promise((r) => setTimeout(r, 5000).unref())]);
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      }
    }
    if (this.log) {
      const log = this.log;
      this.log = null;
      await new Promise<void>((r) => log.end(r));
    }
    if (this.tmp) {
      const tmp = this.tmp;
      this.tmp = null;
      await rm(tmp, { recursive: true, force: true });
    }
  }
}
