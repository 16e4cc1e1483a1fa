import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BACKENDS, World, put, tree, type Client } from './world.js';

/** What the agent said it received over the wire in the sessions since the last call. */
function received(w: World): number {
  let n = 0;
  for (const line of w.agentLog.splice(0)) {
    const m = /session moved: received (\d+) bytes/.exec(line);
    if (m) n += Number(m[1]);
  }
  return n;
}

const SIZE = 200_000;
const body = (i: number): string => `${i}:`.repeat(SIZE).slice(0, SIZE);

describe.each(BACKENDS)('an interrupted transfer resumes where it stopped (%s repository)', (backend) => {
  let w: World;
  beforeEach(async () => {
    w = await World.create(backend);
  });
  afterEach(async () => {
    await w.dispose();
  });

  it('a sync that failed mid-upload: the next one sends only what the repository did not verify yet, and the snapshot is whole', async () => {
    const a: Client = await w.client('alice', { 'input/readme.txt': 'r' });
    await w.sync(a, 'first');
    for (let i = 0; i < 8; i++) await put(a, `input/data/part-${i}.bin`, body(i));
    w.failRemote.add('remote.writeFile#5'); // the fifth upload fails: the sync rolls back
    await expect(w.sync(a, 'interrupted')).rejects.toThrow(/injected failure/);
    w.failRemote.clear();
    expect(await w.head()).toBe('s1'); // old snapshot, nothing of the failed one
    received(w);

    const r = await w.sync(a, 'resumed');
    expect(r.snapshotId).toBe('s2');
    expect(r.uploaded).toHaveLength(8);
    expect(r.bytes.uploaded + r.bytes.reused).toBe(8 * SIZE);
    expect(r.bytes.reused).toBeGreaterThanOrEqual(4 * SIZE); // at least the four before the failure
    expect(received(w)).toBeLessThan(r.bytes.uploaded + 64 * 1024); // the rest and the snapshot's metadata
    expect(await w.remoteTree()).toEqual(await tree(a.root));
  });

  it('a clone that failed mid-download: the next one downloads only the rest; the tree is whole', async () => {
    const a: Client = await w.client('alice');
    for (let i = 0; i < 8; i++) await put(a, `input/data/part-${i}.bin`, body(i));
    await w.sync(a, 'first');
    const b = await w.client('bob');
    await expect(w.clone(b, { failClient: new Set(['client.stageFile#5']) })).rejects.toThrow(/injected failure/);
    const r = await w.clone(b);
    expect(r.kind).toBe('clone');
    expect(r.bytes.downloaded + r.bytes.reused).toBe(8 * SIZE);
    expect(r.bytes.reused).toBeGreaterThanOrEqual(4 * SIZE);
    expect(await tree(b.root)).toEqual(await tree(a.root));
  });
});
