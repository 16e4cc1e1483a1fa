import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { SyncAction, SyncState } from '@dsg/manifest';
import { conflictBackupName } from '@dsg/manifest';
import { SyncConflictError } from '../../src/index.js';
import { BACKENDS, World, backupsOf, del, leftovers, put, tree, type Client } from './world.js';

// Every state of the sync-state matrix (docs/ARCHITECTURE.md §3, STATE_ACTIONS in
// @dsg/manifest), end to end with three parties: alice
// (the client whose sync is under test), bob (the other client, who moves
// the repository), and one posix repository behind a real agent.

const F = 'input/f.txt';
const G = 'input/g.txt';
const BASE = { [F]: 'v1', 'input/keep.txt': 'k', 'output/link.txt': '-> ../input/keep.txt' };

interface Case {
  state: SyncState;
  action: SyncAction;
  path: string;
  /** after the baseline (alice init s1, bob clone): make the state */
  setup(a: Client, b: Client, w: World): Promise<void>;
  /** alice's data tree after her sync (= the repository's, unless a conflict) */
  expect: Record<string, string>;
  /** the repository after alice's sync when it differs from alice (conflict) */
  repo?: Record<string, string>;
  kind?: string;
}

const without = (t: Record<string, string>, ...ps: string[]): Record<string, string> =>
  Object.fromEntries(Object.entries(t).filter(([p]) => !ps.includes(p)));

const CASES: Case[] = [
  { state: 'sLCR__all_eq', action: 'none', path: F, setup: async () => {}, expect: BASE, kind: 'nothing' },
  {
    state: 'sLCR__L_eq_C_ne_R',
    action: 'download',
    path: F,
    setup: async (_a, b, w) => {
      await put(b, F, 'v2');
      await w.sync(b);
    },
    expect: { ...BASE, [F]: 'v2' },
    kind: 'local-only',
  },
  {
    state: 'sLCR__L_eq_R_ne_C',
    action: 'cache_only',
    path: F,
    setup: async (a, b, w) => {
      await put(b, F, 'v2');
      await w.sync(b);
      await put(a, F, 'v2');
    },
    expect: { ...BASE, [F]: 'v2' },
    kind: 'cache-only',
  },
  {
    state: 'sLCR__C_eq_R_ne_L',
    action: 'upload',
    path: F,
    setup: async (a) => {
      await put(a, F, 'v2');
    },
    expect: { ...BASE, [F]: 'v2' },
    kind: 'snapshot',
  },
  {
    state: 'sLCR__all_ne',
    action: 'conflict',
    path: F,
    setup: async (a, b, w) => {
      await put(b, F, 'v3');
      await w.sync(b);
      await put(a, F, 'v2');
    },
    expect: { ...BASE, [F]: 'v2' },
    repo: { ...BASE, [F]: 'v3' },
  },
  {
    state: 'sxLCR__C_eq_R',
    action: 'delete_remote',
    path: F,
    setup: async (a) => {
      await del(a, F);
    },
    expect: without(BASE, F),
    kind: 'snapshot',
  },
  {
    state: 'sxLCR__C_ne_R',
    action: 'conflict',
    path: F,
    setup: async (a, b, w) => {
      await put(b, F, 'v3');
      await w.sync(b);
      await del(a, F);
    },
    expect: without(BASE, F),
    repo: { ...BASE, [F]: 'v3' },
  },
  {
    state: 'sLxCR__L_eq_R',
    action: 'cache_only',
    path: G,
    setup: async (a, b, w) => {
      await put(b, G, 'same');
      await w.sync(b);
      await put(a, G, 'same');
    },
    expect: { ...BASE, [G]: 'same' },
    kind: 'cache-only',
  },
  {
    state: 'sLxCR__L_ne_R',
    action: 'conflict',
    path: G,
    setup: async (a, b, w) => {
      await put(b, G, 'bob');
      await w.sync(b);
      await put(a, G, 'alice');
    },
    expect: { ...BASE, [G]: 'alice' },
    repo: { ...BASE, [G]: 'bob' },
  },
  {
    state: 'sLCxR__L_eq_C',
    action: 'delete_local',
    path: F,
    setup: async (_a, b, w) => {
      await del(b, F);
      await w.sync(b);
    },
    expect: without(BASE, F),
    kind: 'local-only',
  },
  {
    state: 'sLCxR__L_ne_C',
    action: 'conflict',
    path: F,
    setup: async (a, b, w) => {
      await del(b, F);
      await w.sync(b);
      await put(a, F, 'v2');
    },
    expect: { ...BASE, [F]: 'v2' },
    repo: without(BASE, F),
  },
  {
    state: 'sxLCxR__only_R',
    action: 'download',
    path: G,
    setup: async (_a, b, w) => {
      await put(b, G, 'new');
      await w.sync(b);
    },
    expect: { ...BASE, [G]: 'new' },
    kind: 'local-only',
  },
  {
    state: 'sxLCRx__only_C',
    action: 'cache_only',
    path: F,
    setup: async (a, b, w) => {
      await del(b, F);
      await w.sync(b);
      await del(a, F);
    },
    expect: without(BASE, F),
    kind: 'cache-only',
  },
  {
    state: 'sLxCxR__only_L',
    action: 'upload',
    path: G,
    setup: async (a) => {
      await put(a, G, 'mine');
    },
    expect: { ...BASE, [G]: 'mine' },
    kind: 'snapshot',
  },
];

describe.each(BACKENDS)('%s repository', (backend) => {
  let w: World;
  let a: Client;
  let b: Client;
  beforeEach(async () => {
    w = await World.create(backend);
    a = await w.client('alice', { [F]: 'v1', 'input/keep.txt': 'k' });
    const { symlink } = await import('node:fs/promises');
    const { mkdir } = await import('node:fs/promises');
    await mkdir(`${a.root}/output`, { recursive: true });
    await symlink('../input/keep.txt', `${a.root}/output/link.txt`);
    expect((await w.sync(a, 'init')).snapshotId).toBe('s1');
    b = await w.client('bob');
    await w.clone(b);
    expect(await tree(b.root)).toEqual(BASE);
  });
  afterEach(async () => {
    await w.dispose();
  });

  describe('every sync state, end to end', () => {
    it('covers all 14 reachable states of the table', () => {
      expect(new Set(CASES.map((c) => c.state)).size).toBe(14);
    });

    for (const c of CASES) {
      it(`${c.state} → ${c.action}`, async () => {
        await c.setup(a, b, w);
        const plan = await w.plan(a);
        const p = plan.paths.find((x) => x.path === c.path);
        expect(p?.state).toBe(c.state);
        expect(p?.action).toBe(c.action);
        const headBefore = await w.head();
        const repoBefore = await w.remoteTree();

        if (c.action === 'conflict') {
          const err = await w.sync(a).catch((e: unknown) => e);
          expect(err).toBeInstanceOf(SyncConflictError);
          expect((err as SyncConflictError).paths).toEqual([c.path]);
          expect((err as SyncConflictError).conflicts[0]!.state).toBe(c.state);
          // nothing transferred, on either side
          expect(await w.head()).toBe(headBefore);
          expect(await w.remoteTree()).toEqual(repoBefore);
          expect(await w.remoteTree()).toEqual(c.repo);
          expect(await tree(a.root)).toEqual(c.expect);
          expect(await leftovers(a)).toEqual([]);
          return;
        }

        const r = await w.sync(a);
        expect(r.kind).toBe(c.kind);
        expect(await tree(a.root)).toEqual(c.expect);
        expect(await w.remoteTree()).toEqual(c.expect);
        expect(await leftovers(a)).toEqual([]);
        if (c.kind === 'snapshot') expect(await w.head()).not.toBe(headBefore);
        else expect(await w.head()).toBe(headBefore);
        if (c.action === 'delete_local') expect(Object.values(await backupsOf(a))).toContain('v1');

        // bob catches up; then all three agree and nothing is left to do
        await w.sync(b);
        expect(await tree(b.root)).toEqual(c.expect);
        expect((await w.sync(a)).kind).toBe('nothing');
        expect((await w.sync(b)).kind).toBe('nothing');
        const again = await w.plan(a);
        expect(again.paths.every((x) => x.action === 'none')).toBe(true);
      });
    }
  });

  describe('conflict resolutions (sync --continue)', () => {
    const setup = async (): Promise<void> => {
      await put(b, F, 'v3');
      await w.sync(b); // s2
      await put(a, F, 'v2');
    };
    const at = new Date('2026-11-25T10:11:12Z');

    it('L keeps the local version and uploads it', async () => {
      await setup();
      const r = await w.sync(a, 'resolve', { resolutions: new Map([[F, 'L']]) });
      expect(r.uploaded).toEqual([F]);
      expect(r.conflictBackups).toEqual([]);
      expect((await w.remoteTree())[F]).toBe('v2');
      expect((await tree(a.root))[F]).toBe('v2');
    });

    it('R takes the remote version and keeps the local loser as <name>~<ts>~', async () => {
      await setup();
      const r = await w.sync(a, 'resolve', { resolutions: new Map([[F, 'R']]), now: () => at });
      expect(r.kind).toBe('local-only');
      expect(r.conflictBackups).toEqual([conflictBackupName(F, new Date('2026-11-25T10:11:12Z'))]);
      const t = await tree(a.root);
      expect(t[F]).toBe('v3');
      expect(t[conflictBackupName(F, new Date('2026-11-25T10:11:12Z'))]).toBe('v2');
      expect(await w.remoteTree()).toEqual({ ...BASE, [F]: 'v3' }); // the backup is never synced
      expect((await w.sync(a)).kind).toBe('nothing');
    });

    it('R and C with backupOnConflict false replace the local loser without a copy', async () => {
      await setup();
      const r = await w.sync(a, 'resolve', {
        resolutions: new Map([[F, 'R']]),
        backupOnConflict: false,
        now: () => at,
      });
      expect(r.conflictBackups).toEqual([]);
      expect(await tree(a.root)).toEqual({ ...BASE, [F]: 'v3' });
      await put(a, F, 'v4');
      await put(b, F, 'v5');
      await w.sync(b);
      const c = await w.sync(a, 'resolve', {
        resolutions: new Map([[F, 'C']]),
        backupOnConflict: false,
        now: () => at,
      });
      expect(c.conflictBackups).toEqual([]);
      expect(await tree(a.root)).toEqual({ ...BASE, [F]: 'v3' });
      expect((await w.remoteTree())[F]).toBe('v3');
    });

    it('C restores the last-synced version on both sides from the snapshot', async () => {
      await setup();
      const r = await w.sync(a, 'resolve', { resolutions: new Map([[F, 'C']]), now: () => at });
      expect(r.kind).toBe('snapshot');
      expect(r.snapshotId).toBe('s3');
      expect((await tree(a.root))[F]).toBe('v1');
      expect((await w.remoteTree())[F]).toBe('v1');
      expect((await tree(a.root))[conflictBackupName(F, new Date('2026-11-25T10:11:12Z'))]).toBe('v2');
      await w.sync(b);
      expect((await tree(b.root))[F]).toBe('v1');
    });

    it('an unresolved conflict among resolved ones still refuses', async () => {
      await setup();
      await put(b, G, 'bob');
      await w.sync(b);
      await put(a, G, 'alice');
      const err = await w.sync(a, 'x', { resolutions: new Map([[F, 'L']]) }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SyncConflictError);
      expect((err as SyncConflictError).paths).toEqual([G]);
    });
  });

  describe('history', () => {
    it('chains snapshots, appends sync-messages and archives the previous manifest on both sides', async () => {
      await put(a, G, 'x');
      const r = await w.sync(a, 'second');
      expect(r.snapshotId).toBe('s2');
      const m = await w.remoteManifest();
      expect(m?.metadata).toMatchObject({
        snapshot_id: 's2',
        snapshot_previous: 's1',
        snapshot_message: 'second',
        created_by: 'alice@example.org',
      });
      const { readFile } = await import('node:fs/promises');
      const { decompressArchive, parseManifest, parseSyncMessages, validateChain } = await import('@dsg/manifest');
      for (const root of [a.root, w.currentDir]) {
        const sm = parseSyncMessages(await readFile(`${root}/.dsg/sync-messages.json`, 'utf8'));
        expect(Object.keys(sm.snapshots)).toEqual(['s1', 's2']);
        const s1 = parseManifest(decompressArchive(await readFile(`${root}/.dsg/archive/s1-sync.json.lz4`)));
        const s2 = parseManifest(await readFile(`${root}/.dsg/last-sync.json`));
        expect(validateChain([s1, s2])).toEqual({ ok: true });
      }
    });
  });
});
