import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from '@dsg/contracts';
import { HEX16 } from './hash.js';

/**
 * The stat cache: path → (size, mtime, inode, hash). A file whose lstat
 * still shows the same three values is not read again. Format (ours):
 * `{"version":2,"entries":{"<path>":[size,mtimeMs,inode,"<hash>"]}}`.
 * mtimeMs is the float Node reports (sub-millisecond digits included);
 * plain-number stats rather than bigint ones because the 14 BigInts of
 * every bigint stat dominated a 100k-file scan's garbage collection. A
 * corrupt or foreign cache is ignored (it is only a cache): the scan then
 * hashes everything and rewrites it.
 */
export interface StatKey {
  size: number;
  mtimeMs: number;
  ino: number;
}

type Row = [number, number, number, string];
const VERSION = 2;

export class StatCache {
  private readonly rows = new Map<string, Row>();
  /** whether save() has anything new to write (an unchanged tree rewrites nothing) */
  dirty = false;

  static async load(file: string | undefined): Promise<StatCache> {
    const c = new StatCache();
    if (!file) return c;
    try {
      const raw = JSON.parse(await readFile(file, 'utf8')) as { version?: unknown; entries?: unknown };
      if (raw.version !== VERSION || typeof raw.entries !== 'object' || raw.entries === null) {
        c.dirty = true;
        return c;
      }
      const rows = raw.entries as Record<string, unknown>;
      for (const p of Object.keys(rows)) {
        const row = rows[p];
        if (
          Array.isArray(row) &&
          row.length === 4 &&
          typeof row[0] === 'number' &&
          typeof row[1] === 'number' &&
          typeof row[2] === 'number' &&
          typeof row[3] === 'string' &&
          HEX16.test(row[3])
        ) {
          c.rows.set(p, row as Row);
        }
      }
    } catch {
      // missing or unreadable cache: start empty
      c.dirty = true;
    }
    return c;
  }

  /** The cached hash when size, mtime and inode all still match. */
  lookup(relPath: string, key: StatKey): string | undefined {
    const row = this.rows.get(relPath);
    if (!row) return undefined;
    if (row[0] !== key.size || row[1] !== key.mtimeMs || row[2] !== key.ino) return undefined;
    return row[3];
  }

  set(relPath: string, key: StatKey, hash: string): void {
    this.rows.set(relPath, [key.size, key.mtimeMs, key.ino, hash]);
    this.dirty = true;
  }

  /** Keep only `keep` paths (drops deleted files). */
  retain(keep: Set<string>): void {
    for (const p of this.rows.keys()) {
      if (!keep.has(p)) {
        this.rows.delete(p);
        this.dirty = true;
      }
    }
  }

  async save(file: string): Promise<void> {
    await mkdir(path.dirname(file), { recursive: true });
    const entries: Record<string, Row> = {};
    for (const [p, row] of this.rows) entries[p] = row;
    await writeFileAtomic(file, JSON.stringify({ version: VERSION, entries }));
    this.dirty = false;
  }
}
