import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, open, rename, rm } from 'node:fs/promises';
import { once } from 'node:events';
import os from 'node:os';
import path from 'node:path';
import {
  NotFoundError,
  ValidationError,
  assertSafeRelativePath,
  readAll,
  safeText,
  streamVerified,
  type ByteStream,
} from '@dsg/contracts';
import {
  createXxh3Hasher,
  entriesHash,
  projectScope,
  unusableReason,
  validateChain,
  type FileEntry,
  type Manifest,
} from '@dsg/manifest';
import type { Ctx } from '../context.js';
import { loadProject, withSession } from '../session.js';
import { diffManifests, readHistory, type Change } from '@dsg/coordinator';
import { assertSnapshotId } from '../history.js';
import {
  blameSchema,
  logSchema,
  snapfetchSchema,
  snapmountSchema,
  validateChainSchema,
  validateSnapshotSchema,
} from '../output/json-schemas.js';
import { EXIT, UsageError } from '../output/errors.js';
import { formatBytes } from '../output/output.js';
import { repoRelative } from './paths.js';

export async function logCommand(ctx: Ctx, o: { number?: string; since?: string; author?: string }): Promise<void> {
  const n = o.number === undefined ? 10 : Number(o.number);
  if (!Number.isInteger(n) || n < 1)
    throw new UsageError(`-n expects a positive whole number, got ${JSON.stringify(o.number)}`);
  const since = o.since ? Date.parse(o.since) : null;
  if (since !== null && Number.isNaN(since))
    throw new UsageError(`--since expects a date like 2025-06-01, got ${JSON.stringify(o.since)}`);
  await withSession(ctx, async ({ project, conn }) => {
    const h = await readHistory(conn.client, { localRoot: project.root });
    const rows = h.snapshots.map((s, i) => {
      const prev = i > 0 ? (h.snapshots[i - 1]!.manifest ?? null) : null;
      const diff = s.manifest && (i === 0 || prev) ? diffManifests(prev, s.manifest) : null;
      const count = (c: Change): number | null => (diff ? [...diff.values()].filter((v) => v === c).length : null);
      return {
        snapshotId: s.snapshotId,
        createdAt: s.metadata.created_at,
        user: s.metadata.created_by,
        message: s.metadata.snapshot_message,
        hash: s.metadata.snapshot_hash,
        added: count('added'),
        changed: count('changed'),
        removed: count('removed'),
      };
    });
    const picked = rows
      .reverse()
      .filter((r) => (since === null ? true : Date.parse(r.createdAt) >= since))
      .filter((r) => (o.author ? r.user.includes(o.author) : true))
      .slice(0, n);
    ctx.out.result(logSchema, { command: 'log', snapshots: picked }, (d) => {
      const c = ctx.out.c;
      for (const r of d.snapshots) {
        const counts = r.added === null ? '' : c.dim(`  +${r.added} ~${r.changed} -${r.removed}`);
        ctx.out.line(`${c.yellow(r.snapshotId.padEnd(5))} ${r.createdAt}  ${c.cyan(r.user)}${counts}`);
        ctx.out.line(`      ${r.message ?? ''}`);
      }
      if (d.snapshots.length === 0) ctx.out.line('no snapshots match');
    });
  });
}

export async function blameCommand(ctx: Ctx, file: string): Promise<void> {
  const project = await loadProject(ctx);
  const rel = repoRelative(project.root, ctx.cwd, file);
  await withSession(ctx, async ({ project, conn }) => {
    const h = await readHistory(conn.client, { localRoot: project.root });
    const events = [];
    let prev: Manifest | null = null;
    for (const s of h.snapshots) {
      if (!s.manifest) {
        ctx.out.warn(`the manifest of ${s.snapshotId} is not available; blame skips it`);
        continue;
      }
      const change = diffManifests(prev, s.manifest).get(rel);
      if (change) {
        const e = (change === 'removed' ? prev : s.manifest)!.entries.get(rel)!;
        events.push({
          snapshotId: s.snapshotId,
          createdAt: s.metadata.created_at,
          change,
          user: change === 'removed' ? s.metadata.created_by : e.user,
          hash: change === 'removed' ? null : e.type === 'file' ? e.hash : `link:${e.reference}`,
          message: s.metadata.snapshot_message,
        });
      }
      prev = s.manifest;
    }
    if (events.length === 0) {
      throw new NotFoundError(`${rel} is in no snapshot of the repository`, {
        recoveryHint: 'Check the path (relative to the project root); `dsg list-files` lists them.',
      });
    }
    ctx.out.result(blameSchema, { command: 'blame', path: rel, events }, (d) => {
      const c = ctx.out.c;
      for (const e of d.events) {
        ctx.out.line(
          `${c.yellow(e.snapshotId.padEnd(5))} ${e.change.padEnd(8)} ${e.createdAt}  ${c.cyan(e.user)}  ${e.hash ?? '-'}  ${c.dim(e.message ?? '')}`,
        );
      }
    });
  });
}

export async function snapfetchCommand(
  ctx: Ctx,
  file: string,
  o: { snapshot?: string; output?: string; force?: boolean },
): Promise<void> {
  if (!o.snapshot)
    throw new UsageError('snapfetch needs --snapshot sN', 'Example: dsg snapfetch input/a.csv --snapshot s1');
  const sid = assertSnapshotId(o.snapshot);
  if (o.output === '-' && ctx.out.opts.json)
    throw new UsageError(
      '-o - writes the file to stdout, where --json writes its document',
      'Drop --json, or give -o <file> (outside the data directories).',
    );
  const project = await loadProject(ctx);
  const rel = repoRelative(project.root, ctx.cwd, file);
  const target = snapfetchTarget(ctx, o.output);
  if (target.kind === 'file') warnIfInDataDir(ctx, project.root, project.config.data_dirs, target.path);
  await withSession(ctx, async ({ conn }) => {
    const snaps = await conn.client.listSnapshots();
    if (!snaps.some((s) => s.snapshotId === sid)) {
      throw new NotFoundError(
        `snapshot ${sid} does not exist (the repository has ${snaps.map((s) => s.snapshotId).join(', ') || 'none'})`,
        { recoveryHint: '`dsg log` lists the snapshots.' },
      );
    }
    // A flat repository (the original's xfs tree) keeps only the head's bytes: for an older snapshot its
    // backend says so (and throws) before dsg looks for a manifest a clone of it may not have
    const early =
      conn.client.layout === 'flat' && sid !== snaps.at(-1)?.snapshotId
        ? await conn.client.readSnapshotFile(sid, rel)
        : null;
    const expected = await snapshotEntry(conn.client, sid, rel, project.root);
    const stream = early ?? (await conn.client.readSnapshotFile(sid, rel));
    if (!stream)
      throw new NotFoundError(`${rel} is listed in snapshot ${sid} but its file is missing from the repository`, {
        recoveryHint: 'The repository is damaged; run `dsg validate-snapshot`.',
      });
    // stdout and the default file go through a directory of their own under the system's temp dir:
    // never into the project, and the bytes reach stdout only once they are verified
    const own = target.kind === 'file' ? null : await mkdtemp(path.join(os.tmpdir(), 'dsg-snapfetch-'));
    const out = own ? path.join(own, `${path.posix.basename(rel)}.${sid}`) : (target as { path: string }).path;
    let bytes = 0;
    try {
      bytes = await writeVerified(ctx, out, rel, sid, stream, expected, Boolean(o.force));
      if (target.kind === 'stdout') await copyToStdout(out, ctx.stdout ?? process.stdout);
    } catch (e) {
      if (own) await rm(own, { recursive: true, force: true });
      throw e;
    }
    if (target.kind === 'stdout') {
      await rm(own!, { recursive: true, force: true });
      return;
    }
    const hash = expected.hash;
    ctx.out.result(
      snapfetchSchema,
      { command: 'snapfetch', path: rel, snapshotId: sid, output: out, bytes, hash },
      (d) =>
        ctx.out.line(
          `wrote ${d.path} as of ${d.snapshotId} to ${path.relative(ctx.cwd, d.output) || d.output} (${formatBytes(d.bytes)}, hash ${d.hash})`,
        ),
    );
  });
}

/**
 * Where snapfetch writes: `-o -` → stdout; no `-o` → stdout when stdout is
 * not a terminal (a pipe or a file, as `git show` does), else a new file
 * under the system's temp dir (so nothing lands in a data directory, where
 * the next sync would upload it); `-o FILE` → that file.
 */
function snapfetchTarget(
  ctx: Ctx,
  output: string | undefined,
): { kind: 'stdout' } | { kind: 'temp' } | { kind: 'file'; path: string } {
  if (output === '-') return { kind: 'stdout' };
  if (output !== undefined) return { kind: 'file', path: path.resolve(ctx.cwd, output) };
  if (!ctx.out.opts.json && !(ctx.stdout ?? process.stdout).isTTY) return { kind: 'stdout' };
  return { kind: 'temp' };
}

/** An explicit -o inside a data directory is allowed, and said: the next sync uploads it. */
function warnIfInDataDir(ctx: Ctx, root: string, dataDirs: readonly string[], out: string): void {
  const rel = path.relative(root, out);
  if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) return;
  const dir = projectScope(dataDirs).dataDirOf(rel.split(path.sep).join('/'));
  if (dir)
    ctx.out.warn(
      `${rel} is inside the data directory ${dir}/: the next \`dsg sync\` will upload it (write it elsewhere with -o, or to stdout with -o -)`,
    );
}

/** Write beside the target, then rename: never a half-written output; refuse an existing one unless `force`. */
async function writeVerified(
  ctx: Ctx,
  out: string,
  rel: string,
  sid: string,
  stream: ByteStream,
  expected: FileEntry,
  force: boolean,
): Promise<number> {
  await mkdir(path.dirname(out), { recursive: true });
  const tmp = `${out}.dsg-partial-${process.pid}`;
  let bytes = 0;
  try {
    // the bytes must be the ones the snapshot's manifest records, or nothing is written
    const fh = await open(tmp, 'wx');
    try {
      bytes = await streamVerified(
        fh,
        rel,
        stream,
        { hash: expected.hash, size: expected.filesize },
        createXxh3Hasher,
        {
          mismatch: (m) =>
            new ValidationError(
              `${rel} in snapshot ${sid} does not match its manifest (${m.field} ${m.expected} expected, ${m.got} received): nothing was written`,
              { path: rel },
              {
                code: 'HASH_MISMATCH',
                recoveryHint:
                  'The repository was changed outside dsg or is damaged; run `dsg validate-snapshot` and tell its admin.',
              },
            ),
        },
      );
    } finally {
      await fh.close();
    }
    if (!force) {
      const fh = await open(out, 'wx').catch((e: NodeJS.ErrnoException) => {
        if (e.code === 'EEXIST') {
          throw new ValidationError(
            `${path.relative(ctx.cwd, out) || out} already exists; not overwriting it`,
            { path: out },
            { recoveryHint: 'Pass -o <other file>, or --force to overwrite.' },
          );
        }
        throw e;
      });
      await fh.close();
    }
    await rename(tmp, out);
  } finally {
    await rm(tmp, { force: true });
  }
  return bytes;
}

async function copyToStdout(file: string, stdout: NodeJS.WriteStream): Promise<void> {
  for await (const chunk of createReadStream(file)) {
    if (!stdout.write(chunk as Buffer)) await once(stdout, 'drain');
  }
}

/** Snapshot `sid`'s manifest, checked against its recorded entries_hash (`rel` only names the file in the message). */
export async function verifiedManifest(
  remote: Parameters<typeof readHistory>[0],
  sid: string,
  rel: string,
  localRoot: string,
): Promise<Manifest> {
  const rec = (await readHistory(remote, { localRoot })).get(sid);
  const m = rec.manifest;
  if (!m?.metadata) {
    throw new NotFoundError(`the manifest of snapshot ${sid} is not available, so ${rel} cannot be verified`, {
      recoveryHint:
        'Its archive is missing from the repository (.dsg/archive/); `dsg validate-chain` shows which ones.',
    });
  }
  if (entriesHash(m.entries.values()) !== m.metadata.entries_hash) {
    throw new ValidationError(
      `the manifest of snapshot ${sid} does not match its entries_hash: it was changed outside dsg or is damaged`,
      { field: 'entries_hash' },
      {
        code: 'REMOTE_MANIFEST',
        recoveryHint: 'Run `dsg validate-chain`, and tell the repository admin.',
      },
    );
  }
  return m;
}

/**
 * The entry `rel` has in snapshot `sid`'s manifest (last-sync.json for the
 * head, its archive for earlier ones), from a manifest whose entries hash to
 * its recorded entries_hash: snapfetch verifies the bytes against it.
 */
async function snapshotEntry(
  remote: Parameters<typeof readHistory>[0],
  sid: string,
  rel: string,
  localRoot: string,
): Promise<FileEntry> {
  const m = await verifiedManifest(remote, sid, rel, localRoot);
  const e = m.entries.get(rel);
  if (!e)
    throw new NotFoundError(`${rel} is not in snapshot ${sid}`, {
      recoveryHint: `\`dsg blame ${rel}\` shows the snapshots that have it.`,
    });
  if (e.type !== 'file')
    throw new ValidationError(`${rel} is a symlink to ${JSON.stringify(e.reference)} in snapshot ${sid}, not a file`, {
      path: rel,
    });
  const why = unusableReason(e);
  if (why)
    throw new ValidationError(
      `${rel} in snapshot ${sid} is held back (${why}): dsg never writes it`,
      { path: rel },
      { recoveryHint: 'Another tool recorded this entry; fetch it with that tool.' },
    );
  return e;
}

export async function snapmountCommand(
  ctx: Ctx,
  o: { snapshot?: string; mountpoint?: string; unmount?: string },
): Promise<void> {
  await withSession(ctx, async ({ conn }) => {
    if (o.unmount) {
      await conn.client.unmountSnapshot(o.unmount);
      ctx.out.result(
        snapmountSchema,
        { command: 'snapmount', action: 'unmount', snapshotId: null, mountpoint: o.unmount },
        (d) => ctx.out.line(`unmounted ${d.mountpoint}`),
      );
      return;
    }
    if (!o.snapshot) throw new UsageError('snapmount needs --snapshot sN (or --unmount dir)');
    const sid = assertSnapshotId(o.snapshot);
    const wanted = o.mountpoint ? path.resolve(ctx.cwd, o.mountpoint) : undefined;
    const at = await conn.client.mountSnapshot(sid, wanted);
    if (wanted && at !== wanted)
      ctx.out.warn(`this backend shows snapshots in place, at ${at}; --mountpoint applies to ZFS repositories`);
    ctx.out.result(snapmountSchema, { command: 'snapmount', action: 'mount', snapshotId: sid, mountpoint: at }, (d) =>
      ctx.out.line(
        `snapshot ${sid} is readable at ${d.mountpoint} (on the repository host); \`dsg snapmount --unmount ${d.mountpoint}\` when done`,
      ),
    );
  });
}

export async function validateChainCommand(ctx: Ctx): Promise<number> {
  return withSession(ctx, async ({ project, conn }) => {
    const h = await readHistory(conn.client, { localRoot: project.root });
    const missing = h.snapshots.find((s) => !s.manifest);
    const manifests = h.snapshots.map((s) => s.manifest).filter((m): m is Manifest => m !== null);
    let problem: { snapshotId: string; reason: string } | null = missing
      ? { snapshotId: missing.snapshotId, reason: 'its manifest (archive) is missing' }
      : null;
    if (!problem) {
      const r = validateChain(manifests);
      if (!r.ok) problem = { snapshotId: r.snapshotId, reason: r.reason };
    }
    if (!problem) {
      for (const s of h.snapshots) {
        if (s.manifest?.metadata && s.manifest.metadata.snapshot_hash !== s.metadata.snapshot_hash) {
          problem = {
            snapshotId: s.snapshotId,
            reason: 'sync-messages.json and the manifest disagree on the snapshot hash',
          };
          break;
        }
      }
    }
    ctx.out.result(
      validateChainSchema,
      { command: 'validate-chain', ok: problem === null, snapshots: h.snapshots.length, problem },
      (d) =>
        d.ok
          ? ctx.out.line(`${ctx.out.c.green('ok')}: the chain of ${d.snapshots} snapshot(s) is intact`)
          : ctx.out.line(`${ctx.out.c.red('broken')} at ${d.problem!.snapshotId}: ${d.problem!.reason}`),
    );
    return problem ? EXIT.error : EXIT.ok;
  });
}

export async function validateSnapshotCommand(ctx: Ctx, o: { snapshot?: string }): Promise<number> {
  return withSession(ctx, async ({ project, conn }) => {
    const h = await readHistory(conn.client, { localRoot: project.root });
    const rec = o.snapshot ? h.get(assertSnapshotId(o.snapshot)) : h.head;
    if (!rec) throw new NotFoundError('the repository has no snapshot');
    if (!rec.manifest) throw new NotFoundError(`the manifest of ${rec.snapshotId} is not available`);
    const problems: { path: string; reason: string }[] = [];
    let files = 0;
    const heldBack: { path: string; reason: string }[] = [];
    for (const e of rec.manifest.entries.values()) {
      // an entry another tool recorded against our rules is never opened by path: listed, not checked
      const why = unusableReason(e);
      if (why) {
        heldBack.push({ path: e.path, reason: why });
        continue;
      }
      assertSafeRelativePath(e.path);
      if (e.type !== 'file') continue;
      files++;
      const s = await conn.client.readSnapshotFile(rec.snapshotId, e.path);
      if (!s) {
        problems.push({ path: e.path, reason: 'missing' });
        continue;
      }
      const hasher = createXxh3Hasher();
      const b = await readAll(s);
      hasher.update(b);
      const got = hasher.digest();
      if (b.length !== e.filesize)
        problems.push({ path: e.path, reason: `size ${b.length}, manifest says ${e.filesize}` });
      else if (e.hash && got !== e.hash)
        problems.push({ path: e.path, reason: `hash ${got}, manifest says ${e.hash}` });
    }
    ctx.out.result(
      validateSnapshotSchema,
      {
        command: 'validate-snapshot',
        snapshotId: rec.snapshotId,
        ok: problems.length === 0,
        files,
        problems,
        heldBack,
      },
      (d) => {
        for (const p of d.problems) ctx.out.line(`${ctx.out.c.red('bad')} ${p.path}: ${p.reason}`);
        for (const p of d.heldBack ?? [])
          ctx.out.line(`${ctx.out.c.yellow('not checked')} ${safeText(p.path)}: ${p.reason}`);
        ctx.out.line(
          d.ok
            ? `${ctx.out.c.green('ok')}: ${d.files} file(s) of ${d.snapshotId} match the manifest`
            : `${d.problems.length} problem(s) in ${d.snapshotId}`,
        );
      },
    );
    return problems.length ? EXIT.error : EXIT.ok;
  });
}
