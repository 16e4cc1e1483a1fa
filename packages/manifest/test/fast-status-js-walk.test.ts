// treeIsLastSync with the JavaScript lister (where @dsg/dirstat's add-on cannot load): the same
// verdicts as with the native one. Its own file: the lister is chosen once per process.
process.env.DSG_DIRSTAT = 'js';

import { rm, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { lister } from '@dsg/dirstat';
import { describe, expect, it } from 'vitest';
import { FILES, OLD, project, synced } from './fast-status-fixtures.js';

describe('treeIsLastSync with the JavaScript lister', () => {
  it('unchanged: true; a rewrite that kept size and mtime, a removal, an addition: false', async () => {
    const root = await project(FILES);
    const s = await synced(root);
    expect(await s.fast()).toBe(true);
    expect(lister()).toBe('js');

    const f = path.join(root, 'input/a.csv');
    await writeFile(f, 'b2'); // same size
    await utimes(f, OLD, OLD); // same mtime: only the ctime moved
    expect(await s.fast()).toBe(false);
    expect(await s.full()).toBe(false);

    const removed = await project(FILES);
    const r = await synced(removed);
    await rm(path.join(removed, 'input/a0'));
    expect(await r.fast()).toBe(false);

    const added = await project(FILES);
    const a = await synced(added);
    await writeFile(path.join(added, 'output/new.txt'), 'n');
    expect(await a.fast()).toBe(false);
  });
});
