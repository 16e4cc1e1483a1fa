import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from './format.js';

/**
 * The stat cache: path → (size, mtime in ns, inode, hash). A file whose
 * lstat still shows the same three values is not read again. Format (ours):
 * `{"version":1,"entries":{"<path>":[size,"<mtimeNs>",inode,"<hash>"]}}`;
 * mtime and inode are kept as decimal strings/numbers from bigint stats so
 * nanoseconds survive. A corrupt or foreign cache is ignored (it is only a
 * cache): the scan then hashes everything and rewrites it.
 */
export interface StatKey {
  size: bigint;
  mtimeNs: bigint;
  ino: bigint;
}

type Row = [number, string, string, string];

export class StatCache {
  private readonly rows = new Map<string, Row>();
  /** whether save() has anything new to write (an unchanged tree rewrites nothing) */
  dirty = false;

  static async load(file: string | undefined): Promise<StatCache> {
    const c = new StatCache();
    if (!file) return c;
    try {
      const raw = JSON.parse(await readFile(file, 'utf8')) as { version?: unknown; entries?: unknown };
      if (raw.version !== 1 || typeof raw.entries !== 'object' || raw.entries === null) {
        c.dirty = true;
        return c;
      }
      for (const [p, row] of Object.entries(raw.entries as Record<string, unknown>)) {
        if (
          Array.isArray(row) && row.length === 4 && typeof row[0] === 'number' && typeof row[1] === 'string' &&
          typeof row[2] === 'string' && typeof row[3] === 'string' && /^[0-9a-f]{16}$/.test(row[3])
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
  lookup(p: string, k: StatKey): string | undefined {
    const row = this.rows.get(p);
    if (!row) return undefined;
    if (BigInt(row[0]) !== k.size || row[1] !== k.mtimeNs.toString() || row[2] !== k.ino.toString()) return undefined;
    return row[3];
  }

  set(p: string, k: StatKey, hash: string): void {
    this.rows.set(p, [Number(k.size), k.mtimeNs.toString(), k.ino.toString(), hash]);
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
    await writeFileAtomic(file, JSON.stringify({ version: 1, entries }));
    this.dirty = false;
  }
}
