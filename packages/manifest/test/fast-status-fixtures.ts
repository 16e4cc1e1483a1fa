// The fast path's fixtures: projects on disk, synced as a sync leaves them
// (stat cache written, the scan taken as the last sync, its mirror columns).
import { mkdir, mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll } from 'vitest';
import {
  classify,
  decodeMirrorColumns,
  encodeMirror,
  Manifest,
  scanProject,
  treeIsLastSync,
  type ManifestMetadata,
} from '../src/index.js';

export const tmpDirs: string[] = [];
afterAll(async () => {
  for (const d of tmpDirs) await rm(d, { recursive: true, force: true });
});
export const OLD = new Date('2025-06-01T17:11:12Z');

export async function project(files: Record<string, string>): Promise<string> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'dsg-fast-'));
  tmpDirs.push(root);
  for (const [rel, content] of Object.entries(files)) {
    const full = path.join(root, rel);
    await mkdir(path.dirname(full), { recursive: true });
    await writeFile(full, content);
    await utimes(full, OLD, OLD); // not racy: cached by the scan
  }
  return root;
}

export const META: ManifestMetadata = {
  manifest_version: '0.4.4',
  snapshot_id: 's1',
  created_at: '2025-06-01T10:00:00-07:00',
  entry_count: 0,
  entries_hash: '',
  created_by: 'a@example.org',
  snapshot_message: null,
  snapshot_previous: null,
  snapshot_hash: null,
  snapshot_notes: null,
  project_config: null,
};

/**
 * Scan (writing the stat cache) and take the scan as the last sync, as a
 * sync leaves them; returns the last sync's mirror columns and a function
 * giving the full path's verdict (scan + classify against it: nothing but
 * `none`, no warning).
 */
export async function synced(root: string) {
  const statCacheFile = path.join(root, '.dsg/stat-cache.json');
  const opts = { root, dataDirs: ['input', 'output'], user: 'a@example.org', statCacheFile };
  const scan = await scanProject(opts);
  const last = new Manifest(scan.manifest.entries.values(), META);
  const columns = decodeMirrorColumns(encodeMirror(last, 'd'.repeat(64)), 'd'.repeat(64))!;
  const full = async (): Promise<boolean> => {
    const r = await scanProject({ ...opts, previous: last });
    return r.warnings.length === 0 && classify(r.manifest, last, last).every((p) => p.action === 'none');
  };
  const fast = (): Promise<boolean> =>
    treeIsLastSync({ root, dataDirs: ['input', 'output'], statCacheFile, last: columns });
  return { last, columns, full, fast, statCacheFile };
}

export const FILES = {
  'input/a.csv': 'a1',
  'input/a.b/x': 'x',
  'input/a/y': 'y',
  'input/a0': 'z',
  'output/deep/r.txt': 'r',
  'src/notes.txt': 'outside the data',
};
