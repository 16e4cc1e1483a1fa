/**
 * A hostile client of dsg-agent: speaks the frame protocol (README of
 * @dsg/transports, "Frame layout") directly over an OpenSSH session to the
 * real test sshd, with nothing checked on this side — it sends whatever
 * the test tells it to, as many requests at once as it likes. Written from
 * the documented wire format, not from the transports code under test.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createXxh3Hasher } from '@dsg/manifest';

export const KIND = { REQUEST: 1, RESPONSE: 2, DATA: 3, END: 4, ABORT: 5, PING: 6 } as const;

export type Reply =
  { ok: true; result: unknown } | { ok: false; error: { code: string; message: string; name?: string } };

export interface SshLogin {
  host: string;
  port: number;
  user: string;
  key: string;
  knownHosts: string;
}

/** One argument of the remote command: ssh joins them with spaces for the remote shell, so only plain words are allowed. */
const PLAIN = /^[A-Za-z0-9_/.,:=+@-]+$/;

export function xxh3(b: Uint8Array): string {
  const h = createXxh3Hasher();
  h.update(b);
  return h.digest();
}

function frame(kind: number, id: number, payload: Uint8Array = new Uint8Array(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUInt32BE(5 + payload.length, 0);
  head.writeUInt8(kind, 4);
  head.writeUInt32BE(id, 5);
  return Buffer.concat([head, payload]);
}

export class RawAgentSession {
  /** RESPONSE id 0: the error the agent closed the session with */
  closedWith: Reply | null = null;
  /** the ssh process's exit */
  readonly exited: Promise<{ code: number | null; stderr: string }>;
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly waiters = new Map<number, (r: Reply) => void>();
  private buf = Buffer.alloc(0);
  private id = 0;
  private gone = false;
  private stderr = '';

  /** `ssh -T … user@host -- <agent command>`: the same channel the dsg client uses, no dsg code on this side. */
  static overSsh(login: SshLogin, agentCommand: string[]): RawAgentSession {
    for (const a of agentCommand)
      if (!PLAIN.test(a)) throw new Error(`agent argument ${JSON.stringify(a)} is not a plain word`);
    return new RawAgentSession('ssh', [
      '-T',
      '-F',
      '/dev/null',
      '-p',
      String(login.port),
      '-i',
      login.key,
      '-o',
      'IdentitiesOnly=yes',
      '-o',
      'BatchMode=yes',
      '-o',
      'StrictHostKeyChecking=yes',
      '-o',
      `UserKnownHostsFile=${login.knownHosts}`,
      '-l',
      login.user,
      login.host,
      '--',
      ...agentCommand,
    ]);
  }

  private constructor(cmd: string, args: string[]) {
    this.child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stdin.on('error', () => {});
    this.child.stderr.setEncoding('utf8').on('data', (d: string) => (this.stderr = (this.stderr + d).slice(-20_000)));
    this.child.stdout.on('data', (d: Buffer) => this.onData(d));
    this.exited = new Promise((resolve) => {
      this.child.once('close', (code) => {
        this.gone = true;
        for (const w of this.waiters.values())
          w({
            ok: false,
            error: {
              code: 'CLOSED',
              message: `session closed${this.closedWith ? `: ${JSON.stringify(this.closedWith)}` : ''}`,
            },
          });
        this.waiters.clear();
        resolve({ code, stderr: this.stderr });
      });
    });
  }

  private onData(d: Buffer): void {
    this.buf = Buffer.concat([this.buf, d]);
    while (this.buf.length >= 9) {
      const len = this.buf.readUInt32BE(0);
      if (this.buf.length < 4 + len) return;
      const kind = this.buf.readUInt8(4);
      const id = this.buf.readUInt32BE(5);
      const payload = this.buf.subarray(9, 4 + len);
      this.buf = this.buf.subarray(4 + len);
      if (kind !== KIND.RESPONSE) continue; // DATA/END of downloads and PINGs are not needed here
      const msg = JSON.parse(payload.toString('utf8')) as Reply;
      if (id === 0) this.closedWith = msg;
      const w = this.waiters.get(id);
      this.waiters.delete(id);
      w?.(msg);
    }
  }

  private write(b: Buffer): void {
    if (!this.gone) this.child.stdin.write(b);
  }

  /** A request; its reply comes later (any number may be in flight). */
  send(op: string, fields: Record<string, unknown> = {}): { id: number; reply: Promise<Reply> } {
    const id = ++this.id;
    const reply = this.gone
      ? Promise.resolve<Reply>({ ok: false, error: { code: 'CLOSED', message: 'session closed' } })
      : new Promise<Reply>((r) => this.waiters.set(id, r));
    this.write(frame(KIND.REQUEST, id, Buffer.from(JSON.stringify({ op, ...fields }))));
    return { id, reply };
  }

  request(op: string, fields: Record<string, unknown> = {}): Promise<Reply> {
    return this.send(op, fields).reply;
  }

  async ok(op: string, fields: Record<string, unknown> = {}): Promise<unknown> {
    const r = await this.request(op, fields);
    if (!r.ok) throw new Error(`${op} refused: ${r.error.code} ${r.error.message}`);
    return r.result;
  }

  /** writeFile with its whole content and the right xxh3, at once. */
  upload(tx: string, path: string, content: Uint8Array): Promise<Reply> {
    const { id, reply } = this.send('writeFile', { tx, path, expected: { hash: xxh3(content), size: content.length } });
    this.write(frame(KIND.DATA, id, content));
    this.write(frame(KIND.END, id));
    return reply;
  }

  /**
   * writeFiles (protocol 1.1): the announced `files` as given, then `data` as
   * the one stream (by default every content back to back) — whatever a
   * hostile client cares to announce and send.
   */
  uploadPack(tx: string, files: unknown[], data: Uint8Array): Promise<Reply> {
    const { id, reply } = this.send('writeFiles', { tx, files });
    if (data.length) this.write(frame(KIND.DATA, id, data));
    this.write(frame(KIND.END, id));
    return reply;
  }

  async hello(extra: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    return (await this.ok('hello', { protocol: '1.0', client: 'hostile-test', ...extra })) as Record<string, unknown>;
  }

  /** Close stdin and wait for the agent (it rolls back and unlocks) and ssh to exit. */
  async end(): Promise<{ code: number | null; stderr: string }> {
    this.child.stdin.end();
    return this.exited;
  }

  kill(): void {
    this.child.kill('SIGKILL');
  }
}
