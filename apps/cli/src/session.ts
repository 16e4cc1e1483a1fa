import { requireProject, type LoadedProject } from './config/project.js';
import { loadUserConfig, requireUserConfig, type LoadedUser } from './config/user.js';
import { connect, recoverProject, type Connection } from './connect.js';
import type { Ctx } from './context.js';

export interface Session {
  project: LoadedProject;
  user: LoadedUser | null;
  conn: Connection;
}

/**
 * Load the project (walking up from cwd) and user config, connect to the
 * repository, and run client recovery first (every command does).
 */
/**
 * Tell the user, once, what loading the project found (settings pinned, a
 * connection block ignored). Under --quiet nothing is shown, so nothing is
 * recorded as shown: the next command without -q tells.
 */
export async function reportNotices(ctx: Ctx, p: LoadedProject): Promise<LoadedProject> {
  const notices = p.notices.splice(0);
  if (ctx.out.opts.quiet) return p;
  for (const n of notices) ctx.out.warn(n);
  const ack = p.acknowledge;
  p.acknowledge = null;
  if (ack) await ack();
  return p;
}

/** requireProject, with its notices printed. */
export async function loadProject(ctx: Ctx): Promise<LoadedProject> {
  return reportNotices(ctx, await requireProject(ctx.cwd));
}

export interface SessionOptions {
  needUser?: boolean;
  /**
   * Called with the loaded project once the connection has started opening
   * (before it is open, and before recovery): work that needs no repository
   * can run while the handshake and the agent's start leave this process
   * idle (status compares the tree then). It should start that work and return.
   */
  beforeConnect?: (project: LoadedProject) => Promise<void>;
}

export async function openSession(ctx: Ctx, o: SessionOptions = {}): Promise<Session> {
  const project = await loadProject(ctx);
  const user = o.needUser ? await requireUserConfig(ctx.env) : await loadUserConfig(ctx.env);
  ctx.out.log(
    `project ${project.root} (config ${project.file}${project.legacy ? ', legacy form' : ''}; connection from ${project.connection.source === 'shared' ? project.file : project.connection.file})`,
  );
  if (user) ctx.out.log(`user config ${user.file}`);
  // the connection starts first: its handshake and the agent's start proceed while beforeConnect's work runs
  const connecting = connect(ctx, project.config.repository, project.config.name, user?.config ?? null, {
    root: project.root,
    dataDirs: project.config.data_dirs,
  });
  // a connection that fails while beforeConnect runs is reported by the await below, not as an unhandled rejection
  connecting.catch(() => {});
  if (o.beforeConnect) {
    try {
      await o.beforeConnect(project);
    } catch (e) {
      await connecting.then((c) => c.close()).catch(() => {});
      throw e;
    }
  }
  const conn = await connecting;
  try {
    await recoverProject(ctx, project.root, conn);
  } catch (e) {
    await conn.close().catch(() => {});
    throw e;
  }
  return { project, user, conn };
}

/** Run `fn` with a session, always closing the connection. */
export async function withSession<T>(ctx: Ctx, fn: (s: Session) => Promise<T>, o: SessionOptions = {}): Promise<T> {
  const s = await openSession(ctx, o);
  try {
    return await fn(s);
  } finally {
    await s.conn.close().catch((e: unknown) => ctx.out.log(`closing the connection failed: ${String(e)}`));
  }
}
