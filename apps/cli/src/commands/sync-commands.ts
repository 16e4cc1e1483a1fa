import { access, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { stringify } from 'yaml';
import {
  assertSnapshotMessage,
  ConfigError,
  DsgError,
  NotFoundError,
  readAll,
  ValidationError,
  writeFileAtomic,
} from '@dsg/contracts';
import {
  comparePaths,
  describeOutsideData,
  formatConflictFile,
  parseConflictFile,
  type OutsideData,
} from '@dsg/manifest';
import { hasInterruptedTransaction, LocalClientFilesystem, recoverClient } from '@dsg/client-fs';
import { interruptible } from '../interrupt.js';
import { shownTime } from '../output/time.js';
import { createXxh3Hasher, projectScope } from '@dsg/manifest';
import {
  SyncConflictError,
  compareWithLastSync,
  planOfflineStatus,
  planStatus,
  type LocalComparison,
  runClone,
  runSync,
  STAT_CACHE,
  type ProjectSpec,
  type StatusPlan,
  type SyncPlan,
  type SyncResult,
} from '@dsg/coordinator';
import type { Ctx } from '../context.js';
import { sshFields, sudoField, type SshOptions } from './ssh-options.js';
import {
  DEFAULT_DATA_DIRS,
  DEFAULT_IGNORE,
  PROJECT_CONFIG_FILE,
  findProjectRoot,
  loadProjectConfig,
  parseProjectSource,
  repoNameSchema,
  LOCAL_CONFIG_FILE,
  connectionSummary,
  sharedRepository,
  writeLocalConfig,
  type LoadedProject,
  type RepositoryConfig,
} from '../config/project.js';
import { requireUserConfig, type LoadedUser } from '../config/user.js';
import { parseYamlText } from '../config/yaml-file.js';
import {
  connect,
  connectHost,
  describeRepository,
  recoverProject,
  reportRecovery,
  type Connection,
} from '../connect.js';
import { loadProject, reportNotices, withSession } from '../session.js';
import {
  analyseIncoming,
  changeDoc,
  describeChange,
  incomingConfigCheck,
  invalidIncoming,
  type ConfigChange,
} from './config-change.js';
import { statusSchema, syncSchema } from '../output/json-schemas.js';
import { EXIT, UsageError } from '../output/errors.js';
import { formatBytes } from '../output/output.js';
import { normalizeNames, type Renamed } from '../normalize.js';
import { answersIn, dropPendingMessage, keepPendingMessage, pendingMessage } from './conflict-state.js';
import { afterSyncBackups, printBackupSummary } from './backup-commands.js';

export const CONFLICTS_FILE = 'conflicts.txt';

function projectSpec(p: LoadedProject, user: LoadedUser): ProjectSpec {
  return {
    root: p.root,
    name: p.config.name,
    dataDirs: p.config.data_dirs,
    ignore: p.config.ignore,
    user: user.config.user_id,
    projectConfig: p.raw,
  };
}

/** `--normalize`: NFD names in the data dirs renamed to NFC before the scan, as the original does; each rename is reported. */
async function normalizeFirst(
  ctx: Ctx,
  p: LoadedProject,
  user: LoadedUser,
  o: { normalize?: boolean; dryRun?: boolean },
): Promise<Renamed[]> {
  if (!o.normalize) return [];
  const spec = projectSpec(p, user);
  const renamed = await normalizeNames({
    root: spec.root,
    dataDirs: spec.dataDirs,
    ignore: spec.ignore,
    user: spec.user,
    statCacheFile: path.join(spec.root, STAT_CACHE),
    dryRun: Boolean(o.dryRun),
  });
  for (const r of renamed)
    ctx.out.warn(
      `${o.dryRun ? 'would rename' : 'renamed'} ${JSON.stringify(r.from)} to its NFC form ${JSON.stringify(r.to)}`,
    );
  return renamed;
}

function pathStates(plan: Pick<SyncPlan, 'paths'>, all = false): { path: string; state: string; action: string }[] {
  return plan.paths
    .filter((p) => all || p.action !== 'none')
    .map((p) => ({ path: p.path, state: p.state, action: p.action }));
}

function syncDoc(
  command: 'sync' | 'init' | 'clone',
  p: { root: string },
  where: string,
  r: SyncResult,
  dryRun: boolean,
  message: string | null,
) {
  return {
    command,
    project: p.root,
    repository: where,
    snapshotId: r.snapshotId,
    committed: r.kind === 'snapshot',
    dryRun,
    message,
    counts: {
      uploaded: dryRun ? r.plan.counts.upload : r.uploaded.length,
      downloaded: dryRun ? r.plan.counts.download : r.downloaded.length,
      deletedLocal: dryRun ? r.plan.counts.delete_local : r.deletedLocal.length,
      deletedRemote: dryRun ? r.plan.counts.delete_remote : r.deletedRemote.length,
      bytes: r.bytes.uploaded + r.bytes.downloaded,
      // content that did not cross the wire: copied on the server, or from a local file that had it
      bytesReused: r.bytes.reused,
    },
    paths: pathStates(r.plan),
    heldBack: r.plan.heldBack,
  };
}

function printSync(
  ctx: Ctx,
  d: Omit<ReturnType<typeof syncDoc>, 'heldBack'> & { heldBack?: { path: string; reason: string }[] },
  kind: SyncResult['kind'],
): void {
  const c = ctx.out.c;
  if (ctx.out.opts.verbose || d.dryRun)
    for (const p of d.paths)
      ctx.out.line(`  ${p.action.padEnd(14)} ${p.path}${ctx.out.opts.verbose ? c.dim(`  (${p.state})`) : ''}`);
  const n = d.counts;
  const reused = n.bytesReused ? ` (${formatBytes(n.bytesReused)} already there, not sent)` : '';
  const summary = `${n.uploaded} uploaded, ${n.downloaded} downloaded, ${n.deletedLocal} deleted locally, ${n.deletedRemote} deleted remotely${reused}`;
  if (d.dryRun) ctx.out.line(`dry run: would have ${summary.replace(/(\d+) /g, '$1 ')}; nothing was changed`);
  else if (kind === 'nothing')
    ctx.out.line(`already up to date with ${d.snapshotId ?? 'the repository'}; nothing to do`);
  else if (d.committed) ctx.out.line(`${c.green(d.snapshotId ?? '')} committed: ${summary}`);
  else ctx.out.line(`now at ${c.green(d.snapshotId ?? '')} (no new snapshot needed): ${summary}`);
  printHeldBack(ctx, d.heldBack);
}

/** Repository entries this working copy never receives: said on every sync and clone, so nothing is missing silently. */
function printHeldBack(ctx: Ctx, held: { path: string; reason: string }[] | undefined): void {
  if (!held?.length) return;
  ctx.out.warn(
    `${held.length} repository entr${held.length === 1 ? 'y is' : 'ies are'} held back (never written here, kept in the repository as they are):`,
  );
  for (const h of held.slice(0, 20)) ctx.out.warn(`  ${h.path}: ${h.reason}`);
  if (held.length > 20) ctx.out.warn(`  … and ${held.length - 20} more (\`dsg status\` lists them all)`);
}

/**
 * Files outside every data directory, in one line: with the task layout they
 * may be data the user expects synced. The data dirs are names matched at
 * any depth, so the hint is to add a name, not a path.
 */
function printOutsideData(ctx: Ctx, o: OutsideData, before = ''): void {
  const what = describeOutsideData(o);
  if (!what) return;
  ctx.out.line(
    `${before}${what} (not synced; to sync one, add its name to data_dirs in ${PROJECT_CONFIG_FILE}, or to ignore.names to silence this)`,
  );
}

/** Two .dsgconfig.yml forms of one config: the same data dirs and ignore rules (connection blocks never count). */
function sameConfigAs(project: LoadedProject): (local: Buffer, remote: Buffer) => boolean {
  return (_local, remote) => {
    try {
      const c = analyseIncoming(project, remote);
      return !c.scopeChanged && c.invalid === null;
    } catch {
      return false;
    }
  };
}

/** The working copy at `root` as sync, init and clone write it: xxh3, writes only inside the data dirs. */
function workingCopy(root: string, project: LoadedProject): LocalClientFilesystem {
  return new LocalClientFilesystem({ root, hasher: createXxh3Hasher, canWrite: writeGate(project.config.data_dirs) });
}

/** The client's write gate for a project's scope (built once, bound: the client calls it per entry). */
function writeGate(dataDirs: readonly string[]): ReturnType<typeof projectScope>['problem'] {
  const scope = projectScope(dataDirs);
  return scope.problem.bind(scope);
}

/** Run a coordinator call with a progress bar that always ends. */
async function withProgress<T>(
  ctx: Ctx,
  fn: (l: ReturnType<Ctx['out']['progress']>['listener']) => Promise<T>,
): Promise<T> {
  const bar = ctx.out.progress();
  try {
    return await fn(bar.listener);
  } finally {
    bar.stop();
  }
}

export async function statusCommand(ctx: Ctx, o: { offline?: boolean } = {}): Promise<number> {
  const user = await requireUserConfig(ctx.env);
  if (o.offline) return offlineStatus(ctx, user);
  let local: Promise<LocalComparison> | undefined;
  return withSession(
    ctx,
    async ({ project, conn }) => {
      const plan = await withProgress(ctx, (onProgress) =>
        planStatus({
          project: projectSpec(project, user),
          remote: conn.client,
          onProgress,
          sameConfig: sameConfigAs(project),
          ...(local ? { local } : {}),
        }),
      );
      printStatus(ctx, project, conn.where, plan, false);
      return EXIT.ok;
    },
    {
      // the tree is compared with its last sync while the connection opens, unless recovery
      // (which runs once it is open) has an interrupted transaction to finish: it may change the tree
      beforeConnect: async (project) => {
        // (a journal directory that cannot be read: recovery reports it, and the tree is read after it)
        if (await hasInterruptedTransaction(project.root).catch(() => true)) return;
        local = compareWithLastSync({ project: projectSpec(project, user) });
        local.catch(() => undefined); // awaited by planStatus; a connection that fails first must not leave it unhandled
      },
    },
  );
}

/**
 * `status --offline`: the working tree against the last sync only (R := C).
 * No connection of any kind is opened, not even to a repository on this
 * machine, so it answers on a train and never waits for a host.
 */
async function offlineStatus(ctx: Ctx, user: LoadedUser): Promise<number> {
  const project = await loadProject(ctx);
  // what every command does first, without the repository: an apply that needs it to finish is refused below
  let needsRepository = false;
  const report = await recoverClient(project.root, () => {
    needsRepository = true;
    return Promise.reject(new Error('not asked (--offline)'));
  });
  reportRecovery(ctx, report);
  if (needsRepository) {
    throw new DsgError(
      'TX_STATE',
      'an interrupted sync in this working copy is not finished, and only the repository can tell whether its snapshot was committed',
      {
        recoveryHint:
          'Run `dsg status` without --offline once the repository is reachable: it finishes or undoes the interrupted sync.',
      },
    );
  }
  const plan = await withProgress(ctx, (onProgress) =>
    planOfflineStatus({ project: projectSpec(project, user), onProgress }),
  );
  printStatus(ctx, project, describeRepository(project.config.repository, project.config.name), plan, true);
  return EXIT.ok;
}

/** The status document and its text. Offline (R := C) the changes are this copy's since its last sync, said as such. */
function printStatus(ctx: Ctx, project: LoadedProject, where: string, plan: StatusPlan, offline: boolean): void {
  const by = (a: string): string[] => plan.paths.filter((p) => p.action === a).map((p) => p.path);
  const doc = {
    command: 'status' as const,
    project: project.root,
    repository: where,
    remoteSnapshot: plan.remoteSnapshotId,
    offline,
    upload: by('upload'),
    download: by('download'),
    deleteLocal: by('delete_local'),
    deleteRemote: by('delete_remote'),
    conflicts: by('conflict'),
    invalidNames: plan.invalid,
    heldBack: plan.heldBack,
    paths: pathStates(plan),
    clean: plan.paths.every((p) => p.action === 'none' || p.action === 'cache_only') && plan.invalid.length === 0,
    configChange: offline ? null : pendingConfigChange(project, plan),
    outsideData: plan.outside,
  };
  ctx.out.result(statusSchema, doc, (d) => {
    const c = ctx.out.c;
    const state = new Map(d.paths.map((p) => [p.path, p.state]));
    if (d.offline) {
      // the time only if the line is shown: the first time-zone lookup loads ICU data (~20 ms)
      const at = ctx.out.opts.quiet ? undefined : plan.lastSyncAt;
      ctx.out.line(
        `Compared with the last sync (${d.remoteSnapshot ?? '?'}${at ? `, ${shownTime(at)}` : ''}); the repository was not asked (--offline)`,
      );
    } else ctx.out.line(`On ${d.repository}, remote at ${d.remoteSnapshot ?? '(no snapshot yet)'}`);
    const section = (title: string, items: string[], color: (s: string) => string): void => {
      if (!items.length) return;
      ctx.out.line(`\n${title}:`);
      for (const i of items)
        ctx.out.line(`  ${color(i)}${ctx.out.opts.verbose ? c.dim(`  (${state.get(i) ?? ''})`) : ''}`);
    };
    if (d.offline) {
      // R is C: an upload is a change made here (only_L: a new file), a remote deletion a file deleted here
      const added = new Set(d.paths.filter((p) => p.state === 'sLxCxR__only_L').map((p) => p.path));
      section(
        'Modified here since the last sync',
        d.upload.filter((p) => !added.has(p)),
        c.green,
      );
      section(
        'Added here since the last sync',
        d.upload.filter((p) => added.has(p)),
        c.green,
      );
      section('Deleted here since the last sync', d.deleteRemote, c.yellow);
    } else {
      section('To upload', d.upload, c.green);
      section('To download', d.download, c.cyan);
      section('To delete locally', d.deleteLocal, c.yellow);
      section('To delete remotely', d.deleteRemote, c.yellow);
      section('Conflicts', d.conflicts, c.red);
    }
    if (d.invalidNames.length) {
      ctx.out.line('\nInvalid names (sync refuses until they are renamed or ignored):');
      for (const i of d.invalidNames) ctx.out.line(`  ${c.red(i.path)}: ${i.reason}`);
    }
    if (d.heldBack.length) {
      ctx.out.line('\nHeld back (in the repository, never written here; kept there as they are):');
      for (const i of d.heldBack) ctx.out.line(`  ${c.yellow(i.path)}: ${i.reason}`);
    }
    if (d.configChange) printConfigChange(ctx, d.configChange);
    printOutsideData(ctx, d.outsideData, '\n');
    if (d.clean)
      ctx.out.line(
        d.offline
          ? '\nno changes since the last sync (the repository may have newer snapshots: `dsg status` asks it)'
          : '\nnothing to sync, working directory matches the repository',
      );
  });
}

/**
 * The repository's .dsgconfig.yml must be one this dsg can read before it is
 * written into a working copy (sync download, clone): a broken one would lock
 * the working copy out of every later command.
 */
function checkRepositoryConfig(content: Uint8Array): void {
  const file = `repository:${PROJECT_CONFIG_FILE}`;
  try {
    parseProjectSource(parseYamlText(Buffer.from(content).toString('utf8'), file));
  } catch (e) {
    throw invalidIncoming(e);
  }
}

type ChangeDoc = ReturnType<typeof changeDoc>;

/** The repository's .dsgconfig.yml when the next sync would bring it here (download, or a conflict on it): what it would change. */
function pendingConfigChange(project: LoadedProject, plan: Pick<SyncPlan, 'paths' | 'config'>): ChangeDoc | null {
  const p = plan.paths.find((x) => x.path === PROJECT_CONFIG_FILE);
  if (!p || (p.action !== 'download' && p.action !== 'conflict')) return null;
  const bytes = plan.config.remote; // the repository's root copy, read by the plan
  if (!bytes) return null;
  let c: ConfigChange;
  try {
    c = analyseIncoming(project, bytes);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    return {
      dataDirs: { added: [], removed: [] },
      ignore: {
        names: { added: [], removed: [] },
        suffixes: { added: [], removed: [] },
        paths: { added: [], removed: [] },
      },
      scopeChanged: false,
      connectionIgnored: [],
      invalid: e.message,
    };
  }
  return c.scopeChanged || c.invalid !== null || c.connectionIgnored.length > 0 ? changeDoc(c) : null;
}

function printConfigChange(ctx: Ctx, d: ChangeDoc): void {
  const c = ctx.out.c;
  ctx.out.line(`\nConfiguration change from the repository (${PROJECT_CONFIG_FILE}):`);
  for (const l of describeChange({ ...d })) ctx.out.line(`  ${c.yellow(l)}`);
  if (d.invalid !== null) ctx.out.line(`  ${c.red('refused whatever you answer')}: ${d.invalid}`);
  else if (d.scopeChanged) ctx.out.line('  `dsg sync` refuses it until you accept it: `dsg sync --accept-config`');
  if (d.connectionIgnored.length)
    ctx.out.line(
      `  it names another repository/agent (${d.connectionIgnored.join(', ')}): ignored, connection settings are local`,
    );
}

export async function syncCommand(
  ctx: Ctx,
  o: {
    message?: string;
    dryRun?: boolean;
    continue?: boolean;
    normalize?: boolean;
    force?: boolean;
    acceptConfig?: boolean;
  },
): Promise<void> {
  if (o.message !== undefined) assertSnapshotMessage(o.message); // before anything connects: ZFS could not store it at commit
  const user = await requireUserConfig(ctx.env);
  await withSession(ctx, async ({ project, conn }) => {
    const normalized = await normalizeFirst(ctx, project, user, o);
    const conflictsFile = path.join(project.root, CONFLICTS_FILE);
    let resolutions: Map<string, 'L' | 'C' | 'R'> | undefined;
    if (o.continue) {
      const text = await readFile(conflictsFile, 'utf8').catch((e: NodeJS.ErrnoException) => {
        if (e.code === 'ENOENT')
          throw new NotFoundError(`there is no ${CONFLICTS_FILE} to continue from`, {
            recoveryHint: 'Run `dsg sync`; it writes conflicts.txt when there are conflicts.',
          });
        throw e;
      });
      resolutions = parseConflictFile(text, conflictsFile);
    }
    // --continue commits with the message the interrupted sync was given, unless a new one is given now
    const stored = o.continue && o.message === undefined ? await pendingMessage(project.root) : null;
    if (stored !== null) assertSnapshotMessage(stored);
    const message = o.message ?? stored ?? 'sync';
    // a plain re-run keeps the answers already written in conflicts.txt for paths still in conflict
    const earlier = o.continue || o.dryRun ? new Map<string, 'L' | 'C' | 'R'>() : await answersIn(conflictsFile);
    let accepted: ConfigChange | null = null;
    let r: SyncResult;
    try {
      r = await interruptible(ctx, { command: 'sync', again: 'dsg sync' }, (watch) =>
        withProgress(ctx, (onProgress) =>
          runSync({
            project: projectSpec(project, user),
            clientFs: watch.clientFs(workingCopy(project.root, project)),
            remote: watch.remote(conn.client),
            transport: conn.transport,
            message,
            dryRun: Boolean(o.dryRun),
            ...(resolutions ? { resolutions } : {}),
            backupOnConflict: user.config.backup_on_conflict,
            validateProjectConfig: incomingConfigCheck(ctx, project, {
              acceptConfig: Boolean(o.acceptConfig),
              accepted: (c) => (accepted = c),
            }),
            sameConfig: sameConfigAs(project),
            onProgress,
          }),
        ),
      );
    } catch (e) {
      if (e instanceof SyncConflictError && !o.dryRun) {
        // under --continue the paths already answered stay in the file, answered (SyncConflictError.resolved)
        const all = [...e.conflicts, ...e.resolved.map((r) => r.plan)].sort((x, y) => comparePaths(x.path, y.path));
        const answers = new Map(e.resolved.map((r) => [r.plan.path, r.resolution]));
        let kept = 0;
        for (const c of e.conflicts) {
          const a = earlier.get(c.path);
          if (a === undefined || answers.has(c.path)) continue;
          answers.set(c.path, a);
          kept++;
        }
        await writeFile(conflictsFile, formatConflictFile(all, answers));
        if (o.message !== undefined) await keepPendingMessage(project.root, o.message);
        ctx.out.warn(`wrote ${conflictsFile}: fill in each "resolution:" line with L, C or R`);
        if (kept > 0)
          ctx.out.warn(
            `kept the ${kept} answer(s) already written there; when every path has one, run \`dsg sync --continue\``,
          );
      }
      throw e;
    }
    if (o.continue && !o.dryRun) await rm(conflictsFile, { force: true });
    if (!o.dryRun) await dropPendingMessage(project.root);
    if (o.dryRun) {
      const pending = pendingConfigChange(project, r.plan);
      if (pending) printPendingWarning(ctx, pending);
    }
    const doc = {
      ...syncDoc('sync', project, conn.where, r, Boolean(o.dryRun), message),
      configChange: accepted ? changeDoc(accepted) : null,
      normalized,
      ...(o.dryRun ? {} : { backups: await afterSyncBackups(ctx, project, user, r) }),
    };
    ctx.out.result(syncSchema, doc, (d) => {
      printSync(ctx, d, r.kind);
      printBackupSummary(ctx, d.backups);
    });
  });
}

function printPendingWarning(ctx: Ctx, d: ChangeDoc): void {
  if (!d.scopeChanged && d.invalid === null) return;
  ctx.out.warn(
    `the repository's ${PROJECT_CONFIG_FILE} changes what is synced${d.invalid !== null ? ' and is invalid' : ''}; \`dsg sync\` will refuse it${d.invalid !== null ? '' : ' without --accept-config'}:`,
  );
  for (const l of describeChange({ ...d })) ctx.out.warn(`  ${l}`);
}

interface InitOptions extends SshOptions {
  host?: string;
  repoPath?: string;
  repoName?: string;
  repoType?: 'zfs' | 'posix' | 'xfs';
  pool?: string;
  dataDirs?: string;
  message?: string;
  dryRun?: boolean;
  force?: boolean;
  normalize?: boolean;
}

/** Ask for what init needs and was not given: only on a terminal, never otherwise (then it is a usage error). */
async function promptMissing(ctx: Ctx, o: InitOptions, defaults: { host: string; name: string }): Promise<InitOptions> {
  if (!ctx.interactive || o.repoPath) return o;
  const { createInterface } = await import('node:readline/promises');
  const rl = createInterface({ input: process.stdin, terminal: false });
  // An iterator keeps lines typed (or pasted) ahead of their question; rl.question would drop them.
  const lines = rl[Symbol.asyncIterator]();
  try {
    const ask = async (q: string, def?: string): Promise<string> => {
      process.stderr.write(`${q}${def ? ` [${def}]` : ''}: `);
      const next = await lines.next();
      if (next.done)
        throw new UsageError(
          'init was cancelled (end of input)',
          'Run `dsg init` again, or pass --repo-type/--host/--repo-path/--repo-name.',
        );
      const a = String(next.value).trim();
      return a || def || '';
    };
    const answer =
      o.repoType ?? (await ask("repository type (zfs, posix, or xfs: the original dsg's flat layout)", 'posix'));
    const repoType = answer === 'zfs' || answer === 'xfs' ? answer : 'posix';
    const host = o.host ?? (await ask('repository host (ssh host or alias, or localhost)', defaults.host));
    const pool = repoType === 'zfs' ? (o.pool ?? (await ask('parent dataset (e.g. tank/dsg)'))) : undefined;
    const repoPath = await ask(
      repoType === 'zfs' ? 'where that dataset is mounted' : 'directory holding the repositories on the host',
    );
    const repoName = o.repoName ?? (await ask('repository name', defaults.name));
    return { ...o, repoType, host, repoPath, repoName, ...(pool ? { pool } : {}) };
  } finally {
    rl.close();
  }
}

export async function initCommand(ctx: Ctx, given: InitOptions): Promise<void> {
  if (given.message !== undefined) assertSnapshotMessage(given.message);
  const user = await requireUserConfig(ctx.env);
  let root = await findProjectRoot(ctx.cwd);
  let o = given;
  /** the config files this run wrote: taken back when init fails before its transaction */
  let wrote: string[] = [];
  if (!root) {
    root = ctx.cwd;
    o = await promptMissing(ctx, given, { host: user.config.default_host ?? 'localhost', name: path.basename(root) });
    const name = o.repoName ?? path.basename(root);
    const type = o.repoType ?? (o.pool ? 'zfs' : 'posix');
    const host = o.host ?? user.config.default_host ?? 'localhost';
    if (!o.repoPath) {
      throw new UsageError(
        `no ${PROJECT_CONFIG_FILE} here and no --repo-path given`,
        'Example: dsg init --host localhost --repo-type posix --repo-path /srv/dsg --repo-name demo',
      );
    }
    if (type === 'zfs' && !o.pool)
      throw new UsageError('a zfs repository needs --pool (the parent dataset, e.g. tank/dsg)');
    const repository =
      type === 'zfs'
        ? { type, host, ...sshFields(o), pool: o.pool, mountpoint: o.repoPath, ...sudoField(type, o) }
        : type === 'xfs' // the original's form: its flat repository <repo-path>/<name>
          ? { type, host, ...sshFields(o), mountpoint: o.repoPath, ...sudoField('posix', o) }
          : { type, host, ...sshFields(o), root: o.repoPath, ...sudoField(type, o) };
    const doc = {
      name,
      repository,
      data_dirs: o.dataDirs ? o.dataDirs.split(',').map((s) => s.trim()) : DEFAULT_DATA_DIRS,
      ignore: DEFAULT_IGNORE,
    };
    const text = stringify(doc);
    const file = path.join(root, PROJECT_CONFIG_FILE);
    const full = parseProjectSource(parseYamlText(text, file)).config; // validate before writing anything
    if (!o.dryRun) {
      // the team's file names the repository; how this person reaches it (port, user, agent, sudo) stays here
      const hadDsgDir = await access(path.join(root, '.dsg')).then(
        () => true,
        () => false,
      );
      await writeFile(file, stringify({ ...doc, repository: sharedRepository(full.repository) }), { flag: 'wx' });
      wrote = [file];
      await writeLocalConfig(root, { name: full.name, repository: full.repository });
      wrote.push(path.join(root, LOCAL_CONFIG_FILE), ...(hadDsgDir ? [] : [path.join(root, '.dsg')]));
    }
    ctx.out.line(`${o.dryRun ? 'would write' : 'wrote'} ${file}`);
    if (o.dryRun) {
      ctx.out.result(
        syncSchema,
        {
          command: 'init',
          project: root,
          repository: `${host}:${o.repoPath}/${name}`,
          snapshotId: null,
          committed: false,
          dryRun: true,
          message: null,
          counts: { uploaded: 0, downloaded: 0, deletedLocal: 0, deletedRemote: 0, bytes: 0, bytesReused: 0 },
          paths: [],
        },
        () => {},
      );
      return;
    }
  } else if (o.repoName || o.repoPath || o.host || o.repoType || o.sudo) {
    ctx.out.warn(`${PROJECT_CONFIG_FILE} already exists in ${root}; the --host/--repo-*/--sudo options are ignored`);
  }
  // Until the transaction begins nothing but the config exists: when the repository cannot be
  // reached or already exists, the files this run wrote go again, so the same command with
  // corrected options (host, agent, name) is not met with "already exists; options ignored".
  const takeBack = async (e: unknown): Promise<never> => {
    if (wrote.length > 0) {
      for (const f of wrote) await rm(f, { force: true, recursive: f.endsWith('.dsg') }).catch(() => {});
      ctx.out.warn(`removed the ${PROJECT_CONFIG_FILE} and ${LOCAL_CONFIG_FILE} this init wrote; nothing else changed`);
    }
    throw e;
  };
  const project = await reportNotices(ctx, await loadProjectConfig(root));
  const conn = await connect(ctx, project.config.repository, project.config.name, user.config, {
    root: project.root,
    dataDirs: project.config.data_dirs,
  }).catch(takeBack);
  try {
    await recoverProject(ctx, project.root, conn).catch(takeBack);
    if (await conn.client.exists().catch(takeBack)) {
      await takeBack(
        new ValidationError(
          `repository ${conn.where} already exists`,
          {},
          {
            code: 'REPO_EXISTS',
            recoveryHint: o.force
              ? '--force never destroys history; remove the repository on the server yourself, or `dsg clone` it.'
              : 'Use `dsg clone` to get a working copy of it, or pick another --repo-name.',
          },
        ),
      );
    }
    const message = o.message ?? 'init';
    const normalized = await normalizeFirst(ctx, project, user, o);
    const r = await interruptible(ctx, { command: 'init', again: 'dsg init' }, (watch) =>
      withProgress(ctx, (onProgress) =>
        runSync({
          project: projectSpec(project, user),
          clientFs: watch.clientFs(workingCopy(project.root, project)),
          remote: watch.remote(conn.client),
          transport: conn.transport,
          message,
          dryRun: Boolean(o.dryRun),
          onProgress,
        }),
      ),
    );
    ctx.out.result(
      syncSchema,
      {
        ...syncDoc('init', project, conn.where, r, Boolean(o.dryRun), message),
        normalized,
        outsideData: r.plan.outside,
      },
      (d) => {
        if (d.dryRun) printSync(ctx, d, r.kind);
        else
          ctx.out.line(
            `initialized ${d.repository} at ${ctx.out.c.green(d.snapshotId ?? '')}: ${d.counts.uploaded} file(s), ${formatBytes(d.counts.bytes)}`,
          );
        printOutsideData(ctx, r.plan.outside);
      },
    );
  } finally {
    await conn.close().catch(() => {});
  }
}

/**
 * A clone source given without --repo-type/--pool: ask the agent (started
 * for the posix root `<path>`) what `<path>/<name>` is, and return the
 * repository config that reaches it — zfs with the dataset's parent as pool
 * and `<path>` as mountpoint, posix (flat when it is the original's tree),
 * or an error naming both. An agent older than protocol 1.3 cannot say: the
 * source is taken as posix, as before.
 */
async function detectCloneSource(
  ctx: Ctx,
  given: RepositoryConfig,
  name: string,
  user: LoadedUser,
  o: SshOptions & { sudo?: boolean },
): Promise<RepositoryConfig> {
  const conn = await connectHost(ctx, given, user.config);
  let found;
  try {
    found = await conn.client.detectRepository(name, { sudo: o.sudo === true });
  } finally {
    await conn.close().catch(() => {});
  }
  if (given.type !== 'posix') return given; // parseCloneSource without --repo-type/--pool names a posix root
  const base = given.root;
  const where = `${given.host ?? 'localhost'}:${path.posix.join(base, name)}`;
  if (found === undefined) {
    ctx.out.log(`the agent cannot detect repositories (protocol < 1.3): ${where} taken as posix`);
    return given;
  }
  if (found.type === 'zfs') {
    ctx.out.line(`${where} is the ZFS dataset ${found.dataset}: cloning with --repo-type zfs --pool ${found.pool}`);
    const { root: _root, flat: _flat, ...rest } = given;
    return { ...rest, type: 'zfs', pool: found.pool, mountpoint: base, ...sudoField('zfs', o) };
  }
  if (found.type === 'posix') {
    sudoField('posix', o); // --sudo on a posix repository: the usage error it always was
    return found.layout === 'flat' ? { ...given, flat: true } : given;
  }
  throw new NotFoundError(`no dsg repository at ${where}: ${found.reason}`, {
    recoveryHint: `Check the path (\`dsg list-repos --host ${given.host ?? 'localhost'} --path ${base}\` lists the repositories there); for a ZFS repository the agent cannot see, give --repo-type zfs --pool <parent dataset>.`,
  });
}

/** `host:/path/name` → the repository config it names (posix unless --repo-type zfs with --pool). */
export function parseCloneSource(
  src: string,
  o: { repoType?: 'zfs' | 'posix' | 'xfs'; pool?: string } & SshOptions,
): { repo: RepositoryConfig; name: string } {
  const m = /^(?:([A-Za-z0-9_.-]+):)?(\/.+)$/.exec(src);
  if (!m)
    throw new UsageError(
      `cannot read ${JSON.stringify(src)} as <host>:<path>/<name>`,
      'Example: dsg clone dsg-server:/var/repos/dsg/my-project',
    );
  const full = path.posix.normalize(m[2]!);
  const name = path.posix.basename(full);
  const base = path.posix.dirname(full);
  if (!repoNameSchema.safeParse(name).success)
    throw new UsageError(`${JSON.stringify(name)} is not a valid repository name`);
  const host = m[1] ?? 'localhost';
  const type = o.repoType ?? (o.pool ? 'zfs' : 'posix');
  if (type === 'zfs' && !o.pool)
    throw new UsageError('cloning from zfs needs --pool (the parent dataset mounted at the path)');
  const ssh = sshFields(o);
  if (type === 'xfs')
    return { name, repo: { type: 'posix', host, ...ssh, root: base, flat: true, ...sudoField('posix', o) } };
  return {
    name,
    repo:
      type === 'zfs'
        ? { type, host, ...ssh, pool: o.pool!, mountpoint: base, ...sudoField(type, o) }
        : { type, host, ...ssh, root: base, ...sudoField(type, o) },
  };
}

export async function cloneCommand(
  ctx: Ctx,
  source: string | undefined,
  dest: string | undefined,
  o: { repoType?: 'zfs' | 'posix' | 'xfs'; pool?: string; dryRun?: boolean; resume?: boolean } & SshOptions,
): Promise<void> {
  // A clone that fails (refused manifest, hash mismatch, full disk) leaves the destination as it
  // found it: absent or empty — not a half-made project with a .dsgconfig.yml and .dsg/.
  const cleanup: { undo: (() => Promise<void>) | null } = { undo: null };
  try {
    await cloneInto(ctx, source, dest, o, cleanup);
  } catch (e) {
    if (cleanup.undo) await cleanup.undo().catch(() => {});
    throw e;
  }
}

async function cloneInto(
  ctx: Ctx,
  source: string | undefined,
  dest: string | undefined,
  o: { repoType?: 'zfs' | 'posix' | 'xfs'; pool?: string; dryRun?: boolean; resume?: boolean } & SshOptions,
  cleanup: { undo: (() => Promise<void>) | null },
): Promise<void> {
  const user = await requireUserConfig(ctx.env);
  let root: string;
  let conn: Connection;
  if (source) {
    // no --repo-type/--pool: the agent says what the path is (a ZFS dataset's mountpoint, or posix);
    // --sudo then applies to what it finds
    const detect = o.repoType === undefined && o.pool === undefined;
    const parsed = parseCloneSource(source, detect ? { ...o, sudo: false } : o);
    const name = parsed.name;
    let repo = parsed.repo;
    if (detect) repo = await detectCloneSource(ctx, repo, name, user, o);
    root = path.resolve(ctx.cwd, dest ?? name);
    const entries = await readdir(root).catch((e: NodeJS.ErrnoException) =>
      e.code === 'ENOENT' ? null : Promise.reject(e),
    );
    if (entries && entries.length > 0 && !o.resume) {
      throw new ValidationError(
        `${root} exists and is not empty`,
        { path: root },
        {
          code: 'DEST_NOT_EMPTY',
          recoveryHint: 'Pick a new directory, or pass --resume to continue an interrupted clone there.',
        },
      );
    }
    if (entries === null) {
      // remove the highest directory the clone creates (mkdir -p may create parents too)
      let top = root;
      while (path.dirname(top) !== top && !(await exists(path.dirname(top)))) top = path.dirname(top);
      cleanup.undo = () => rm(top, { recursive: true, force: true });
    } else if (entries.length === 0) {
      const dir = root;
      cleanup.undo = async () => {
        for (const n of await readdir(dir)) await rm(path.join(dir, n), { recursive: true, force: true });
      };
    }
    conn = await connect(ctx, repo, name, user.config);
    try {
      if (!(await conn.client.exists()))
        throw new NotFoundError(`repository ${conn.where} does not exist`, {
          recoveryHint: '`dsg list-repos --host H --path P` lists the repositories there.',
        });
      // the original's flat (xfs) repository: configs are written in its `{type: xfs, mountpoint}` form, which it reads
      if (repo.type === 'posix' && conn.client.layout === 'flat') {
        repo = { ...repo, flat: true };
        conn.where = describeRepository(repo, name); // said `(posix)`: the clone's messages name what it found
      }
      if (!o.dryRun) {
        await mkdir(root, { recursive: true });
        const cfg = await conn.client.readFile(PROJECT_CONFIG_FILE);
        const file = path.join(root, PROJECT_CONFIG_FILE);
        if (cfg) {
          const bytes = await readAll(cfg);
          checkRepositoryConfig(bytes);
          await writeFileAtomic(file, bytes);
        } else {
          await writeFileAtomic(
            file,
            stringify({
              name,
              repository: sharedRepository(repo),
              data_dirs: DEFAULT_DATA_DIRS,
              ignore: DEFAULT_IGNORE,
            }),
          );
        }
        // how to reach the repository comes from the clone's source and options, never from its .dsgconfig.yml
        await writeLocalConfig(root, { name, repository: repo });
      }
    } catch (e) {
      await conn.close().catch(() => {});
      throw e;
    }
  } else {
    const found = await findProjectRoot(ctx.cwd);
    if (!found)
      throw new UsageError('clone needs <host>:<path>/<name>, or run it inside a directory with a .dsgconfig.yml');
    root = found;
    const p = await reportNotices(ctx, await loadProjectConfig(root));
    if (p.connection.source === 'shared') {
      // nothing names the repository but this .dsgconfig.yml (it may have come with a git checkout): say what it
      // connects to and keep it, so a later .dsgconfig.yml from the repository cannot change it
      ctx.out.warn(
        `cloning from what ${PROJECT_CONFIG_FILE} names (${connectionSummary(p.config)}); kept in ${LOCAL_CONFIG_FILE} — give <host>:<path>/<name> to clone from a source you name`,
      );
      await writeLocalConfig(root, { name: p.config.name, repository: p.config.repository });
    }
    conn = await connect(ctx, p.config.repository, p.config.name, user.config, { root, dataDirs: p.config.data_dirs });
  }
  try {
    if (o.dryRun) {
      const snaps = await conn.client.listSnapshots();
      ctx.out.result(
        syncSchema,
        {
          command: 'clone',
          project: root,
          repository: conn.where,
          snapshotId: snaps.at(-1)?.snapshotId ?? null,
          committed: false,
          dryRun: true,
          message: null,
          counts: { uploaded: 0, downloaded: 0, deletedLocal: 0, deletedRemote: 0, bytes: 0, bytesReused: 0 },
          paths: [],
        },
        (d) => ctx.out.line(`dry run: would clone ${d.repository} at ${d.snapshotId ?? '?'} into ${d.project}`),
      );
      return;
    }
    const project = await reportNotices(
      ctx,
      await loadProjectConfig(root).catch((e: unknown) => {
        throw e instanceof ConfigError
          ? e
          : new ConfigError(`the repository's ${PROJECT_CONFIG_FILE} cannot be read: ${String(e)}`);
      }),
    );
    await recoverProject(ctx, root, conn);
    const again = source
      ? `dsg clone ${source} ${root} --resume${Object.keys(sshFields(o)).length || o.repoType || o.pool ? ' (with the same options)' : ''}`
      : `dsg clone (in ${root})`;
    const r = await interruptible(ctx, { command: 'clone', again, dest: root }, (watch) =>
      withProgress(ctx, (onProgress) =>
        runClone({
          project: projectSpec(project, user),
          clientFs: watch.clientFs(workingCopy(root, project)),
          remote: watch.remote(conn.client),
          transport: conn.transport,
          onProgress,
        }),
      ),
    );
    const backups = await afterSyncBackups(ctx, project, user, r);
    ctx.out.result(syncSchema, { ...syncDoc('clone', project, conn.where, r, false, null), backups }, (d) => {
      ctx.out.line(
        `cloned ${d.repository} at ${ctx.out.c.green(d.snapshotId ?? '')} into ${d.project}: ${d.counts.downloaded} file(s), ${formatBytes(d.counts.bytes)}`,
      );
      printHeldBack(ctx, d.heldBack);
      printBackupSummary(ctx, d.backups);
    });
  } finally {
    await conn.close().catch(() => {});
  }
}

export async function exists(p: string): Promise<boolean> {
  return access(p).then(
    () => true,
    () => false,
  );
}
