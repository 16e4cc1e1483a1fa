import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BACKENDS, World, put, tree, type Client } from './world.js';

describe.each(BACKENDS)('init → clone → edit both sides → sync (%s repository, agent in-process)', (backend) => {
  let w: World;
  beforeEach(async () => {
    w = await World.create(backend);
  });
  afterEach(async () => {
    await w.dispose();
  });

  it('works end to end', async () => {
    const a: Client = await w.client('alice', { 'input/a.csv': 'a1', 'input/b.csv': 'b1', 'output/r.txt': 'r1' });
    const init = await w.sync(a, 'first');
    expect(init.kind).toBe('snapshot');
    expect(init.snapshotId).toBe('s1');
    expect(await w.remoteTree()).toEqual({ 'input/a.csv': 'a1', 'input/b.csv': 'b1', 'output/r.txt': 'r1' });
    const b = await w.client('bob');
    const cl = await w.clone(b);
    expect(cl.kind).toBe('clone');
    expect(await tree(b.root)).toEqual(await tree(a.root));
    await put(a, 'input/a.csv', 'a2');
    await put(b, 'output/new.txt', 'n');
    expect((await w.sync(a)).snapshotId).toBe('s2');
    const rb = await w.sync(b);
    expect(rb.snapshotId).toBe('s3');
    expect(rb.downloaded).toEqual(['input/a.csv']);
    expect(rb.uploaded).toEqual(['output/new.txt']);
    const ra = await w.sync(a);
    expect(ra.kind).toBe('local-only');
    expect(await tree(a.root)).toEqual(await tree(b.root));
    expect(await w.remoteTree()).toEqual(await tree(a.root));
    expect((await w.sync(a)).kind).toBe('nothing');
  });
});
