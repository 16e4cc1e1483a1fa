/*
 * `dsg diff PATH`: one file as it is here (L), as of the last sync (C) and in
 * the repository's head (R) — what each side changed, before choosing L, C or
 * R in conflicts.txt. Sizes, hashes, mtimes and users always; for text files
 * a unified diff of each change against the last sync. The repository's
 * bytes are read into memory (verified against its manifest), never written
 * anywhere; `--offline` compares with the last sync only and connects to
 * nothing.
 */
import { lstat, readFile, readlink } from 'node:fs/promises';
import path from 'node:path';
import { createTwoFilesPatch } from 'diff';
import { DsgError, NotFoundError, readAll, safeText, ValidationError } from '@dsg/contracts';
import { hashBytes, hashFile, readManifestFile, type ManifestEntry } from '@dsg/manifest';
import { hasInterruptedTransaction } from '@dsg/client-fs';
import { LAST_SYNC } from '@dsg/coordinator';
import type { z } from 'zod';
import type { Ctx } from '../context.js';
import { loadProject, withSession } from '../session.js';
import { diffSchema, type diffSideSchema } from '../output/json-schemas.js';
import { formatBytes } from '../output/output.js';
import { repoRelative } from './paths.js';
import { verifiedManifest } from './history-commands.js';

/** Larger files are compared by size and hash only: a text diff of them helps nobody and costs memory. */
export const TEXT_DIFF_MAX = 1024 * 1024;

type Side = z.input<typeof diffSideSchema>;

const absent: Side = { present: false, type: null, size: null, hash: null, mtime: null, user: null, reference: null };

function sideOf(e: ManifestEntry | undefined): Side {
  if (!e) return absent;
  if (e.type === 'link')
    return { present: true, type: 'link', size: null, hash: null, mtime: null, user: e.user, reference: e.reference };
  return {
    present: true,
    type: 'file',
    size: e.filesize,
    hash: e.hash,
    mtime: e.mtime,
    user: e.user,
    reference: null,
  };
}

const sameSide = (a: Side, b: Side): boolean =>
  a.present === b.present && a.type === b.type && a.hash === b.hash && a.reference === b.reference;

/** The file here: lstat (a link is not followed), hashed like a manifest entry; its bytes when small. */
async function localSide(abs: string): Promise<{ side: Side; bytes: Buffer | null }> {
  let st;
  try {
    st = await lstat(abs);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { side: absent, bytes: null };
    throw e;
  }
  if (st.isSymbolicLink())
    return {
      side: { ...absent, present: true, type: 'link', reference: await readlink(abs) },
      bytes: null,
    };
  if (!st.isFile())
    throw new ValidationError(`${abs} is not a regular file`, { path: abs }, { recoveryHint: 'Give a file path.' });
  const bytes = st.size <= TEXT_DIFF_MAX ? await readFile(abs) : null;
  return {
    side: {
      ...absent,
      present: true,
      type: 'file',
      size: st.size,
      hash: bytes ? hashBytes(bytes) : await hashFile(abs),
      mtime: st.mtime.toISOString(),
    },
    bytes,
  };
}

/** Bytes that are text: no NUL, valid UTF-8. */
function textOf(b: Buffer | null): string | null {
  if (b === null || b.includes(0)) return null;
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(b);
  } catch {
    return null;
  }
}

export async function diffCommand(ctx: Ctx, file: string, o: { offline?: boolean }): Promise<void> {
  const project = await loadProject(ctx);
  const rel = repoRelative(project.root, ctx.cwd, file);
  if (o.offline && (await hasInterruptedTransaction(project.root).catch(() => true)))
    throw new DsgError('TX_STATE', 'an interrupted sync in this working copy is not finished', {
      recoveryHint: 'Run `dsg diff` without --offline (or `dsg status`) once the repository is reachable.',
    });
  const cache = await readManifestFile(path.join(project.root, LAST_SYNC));
  if (!cache?.metadata)
    throw new NotFoundError('this working copy has never synced: there is no last sync to compare with', {
      recoveryHint: 'Run `dsg sync` (or `dsg clone`) first.',
    });
  const lastSyncId = cache.metadata.snapshot_id;
  const C = sideOf(cache.entries.get(rel));
  const L = await localSide(path.join(project.root, ...rel.split('/')));
  const bytes: { L: Buffer | null; C: Buffer | null; R: Buffer | null } = { L: L.bytes, C: null, R: null };
  if (C.hash !== null && C.hash === L.side.hash) bytes.C = L.bytes;

  let R: Side | null = null;
  let head: string | null = null;
  if (!o.offline) {
    await withSession(ctx, async ({ conn }) => {
      // the repository's bytes of one side, into memory and checked against its manifest: never onto disk
      const fetch = async (sid: string, side: Side): Promise<Buffer | null> => {
        if (side.type !== 'file' || side.size === null || side.size > TEXT_DIFF_MAX) return null;
        const s = await conn.client.readSnapshotFile(sid, rel);
        if (!s) return null;
        const b = await readAll(s);
        if (hashBytes(b) !== side.hash)
          throw new ValidationError(
            `${rel} in snapshot ${sid} does not match its manifest: the repository was changed outside dsg or is damaged`,
            { path: rel },
            { code: 'HASH_MISMATCH', recoveryHint: 'Run `dsg validate-snapshot` and tell the repository admin.' },
          );
        return b;
      };
      head = (await conn.client.listSnapshots()).at(-1)?.snapshotId ?? null;
      R = head ? sideOf((await verifiedManifest(conn.client, head, rel, project.root)).entries.get(rel)) : absent;
      if (bytes.C === null && C.present) bytes.C = await fetch(lastSyncId, C);
      const r = R;
      if (r.hash !== null && r.hash === L.side.hash) bytes.R = bytes.L;
      else if (r.hash !== null && r.hash === C.hash) bytes.R = bytes.C;
      else if (head && r.present) bytes.R = await fetch(head, r);
    });
  }
  if (!L.side.present && !C.present && !(R as Side | null)?.present)
    throw new NotFoundError(`${rel} is not here, not in the last sync (${lastSyncId}) and not in the repository`, {
      recoveryHint: '`dsg list-files` lists the entries of the last sync; `dsg blame PATH` shows its history.',
    });

  const r = R as Side | null;
  // a side's text: '' for an absent side, null when it is not text or its bytes are not at hand
  const text = (s: Side, b: Buffer | null): string | null => (!s.present ? '' : textOf(b));
  const tC = text(C, bytes.C);
  const tL = text(L.side, bytes.L);
  const tR = r ? text(r, bytes.R) : null;
  const patches: { from: 'lastSync'; to: 'local' | 'repository'; patch: string }[] = [];
  const label = (s: Side, what: string): string => (s.present ? `${rel} (${what})` : '/dev/null');
  if (!sameSide(L.side, C) && tC !== null && tL !== null)
    patches.push({
      from: 'lastSync',
      to: 'local',
      patch: createTwoFilesPatch(label(C, `last sync ${lastSyncId}`), label(L.side, 'local'), tC, tL),
    });
  if (r && !sameSide(r, C) && tC !== null && tR !== null)
    patches.push({
      from: 'lastSync',
      to: 'repository',
      patch: createTwoFilesPatch(label(C, `last sync ${lastSyncId}`), label(r, `repository ${head}`), tC, tR),
    });
  const doc = {
    command: 'diff' as const,
    path: rel,
    offline: Boolean(o.offline),
    local: L.side,
    lastSync: { snapshotId: lastSyncId, ...C },
    repository: r ? { snapshotId: head, ...r } : null,
    changedHere: !sameSide(L.side, C),
    changedInRepository: r ? !sameSide(r, C) : null,
    patches,
  };
  ctx.out.result(diffSchema, doc, (d) => {
    const c = ctx.out.c;
    const describe = (s: Side): string =>
      !s.present
        ? 'absent'
        : s.type === 'link'
          ? `link -> ${s.reference}${s.user ? `  user ${s.user}` : ''}`
          : `file ${formatBytes(s.size ?? 0)}  hash ${s.hash}  mtime ${s.mtime}${s.user ? `  user ${s.user}` : ''}`;
    ctx.out.line(d.path);
    ctx.out.line(
      `  local:      ${describe(d.local)}${d.changedHere ? c.yellow('  (changed here since the last sync)') : ''}`,
    );
    ctx.out.line(`  last sync:  ${d.lastSync.snapshotId}  ${describe(d.lastSync)}`);
    if (d.repository)
      ctx.out.line(
        `  repository: ${d.repository.snapshotId ?? '(no snapshot)'}  ${describe(d.repository)}${d.changedInRepository ? c.yellow('  (changed there since the last sync)') : ''}`,
      );
    else ctx.out.line('  repository: not asked (--offline)');
    // the patches from the document itself: each line escaped on its own (the rendering's copy has its line breaks escaped)
    for (const p of doc.patches) {
      ctx.out.line();
      for (const l of p.patch.trimEnd().split('\n')) {
        if (/^=+$/.test(l)) continue;
        const t = safeText(l);
        ctx.out.line(
          l.startsWith('+') && !l.startsWith('+++')
            ? c.green(t)
            : l.startsWith('-') && !l.startsWith('---')
              ? c.red(t)
              : l.startsWith('@@')
                ? c.cyan(t)
                : t,
        );
      }
    }
    const changed = d.changedHere || d.changedInRepository;
    if (!changed) ctx.out.line('\nno differences');
    else if (d.patches.length === 0)
      ctx.out.line(
        d.offline && d.changedHere && d.lastSync.present
          ? "\n(no text diff offline: the last sync's bytes are in the repository; run without --offline)"
          : `\n(no text diff: not text, or larger than ${formatBytes(TEXT_DIFF_MAX)})`,
      );
  });
}
