import { lstat, rename } from 'node:fs/promises';
import path from 'node:path';
import { resolveBeneath, ValidationError } from '@dsg/contracts';
import { scanProject, type ScanOptions } from '@dsg/manifest';

export interface Renamed {
  from: string;
  to: string;
}

/** A directory renamed can reveal NFD names below it; each pass goes one level deeper. */
const MAX_PASSES = 64;

/**
 * `--normalize`, as the original does it (HRDAG/dsg renames before its scan,
 * `normalize_problematic_paths`): every name in the data dirs that is refused
 * only for not being NFC (macOS writes NFD) is renamed to its NFC form, so
 * the sync that follows finds a valid name. The scan repeats until no such
 * name is left (a renamed directory may hold more). A name whose NFC form
 * already exists is refused, never overwritten; nothing is renamed through a
 * symlinked parent. A sync that fails afterwards leaves the names in NFC,
 * which loses nothing: the next sync takes them. `dryRun`: only says what the
 * first pass would rename.
 */
export async function normalizeNames(
  o: Pick<ScanOptions, 'root' | 'dataDirs' | 'ignore' | 'user' | 'statCacheFile'> & { dryRun?: boolean },
): Promise<Renamed[]> {
  const done: Renamed[] = [];
  for (let pass = 0; pass < MAX_PASSES; pass++) {
    const { warnings } = await scanProject({
      root: o.root,
      dataDirs: o.dataDirs,
      user: o.user,
      ...(o.ignore ? { ignore: o.ignore } : {}),
      ...(o.statCacheFile ? { statCacheFile: o.statCacheFile } : {}),
    });
    const todo = warnings.flatMap((w) => (w.kind === 'name' && w.nfc ? [{ from: w.path, to: w.nfc }] : []));
    if (todo.length === 0 || o.dryRun) return [...done, ...todo];
    for (const r of todo) {
      const from = await resolveBeneath(o.root, r.from);
      const to = await resolveBeneath(o.root, r.to);
      if (path.dirname(from) !== path.dirname(to))
        throw new ValidationError(`cannot normalize ${JSON.stringify(r.from)}: its parent changes too`, {
          path: r.from,
        });
      const taken = await lstat(to).then(
        () => true,
        (e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? false : Promise.reject(e)),
      );
      if (taken) {
        throw new ValidationError(
          `cannot rename ${JSON.stringify(r.from)} to its NFC form: ${JSON.stringify(r.to)} exists`,
          { path: r.from },
          {
            code: 'NORMALIZE_TAKEN',
            recoveryHint:
              'Two names differ only by Unicode normalization; keep one (rename or remove the other), then sync again.',
          },
        );
      }
      await rename(from, to);
      done.push(r);
    }
  }
  throw new ValidationError(`--normalize gave up after ${MAX_PASSES} levels of renamed directories`, {});
}
