import { chmod, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BIG_IN_FLIGHT } from '../../src/transfers.js';
import { PACK_BYTES } from '../../src/routes.js';
import { BACKENDS, World, put, tree, type Client } from './world.js';

/** What the agent said it received and copied in the sessions since the last call. */
function moved(w: World): { received: number; copied: number } {
  let received = 0;
  let copied = 0;
  for (const line of w.agentLog.splice(0)) {
    const m = /session moved: received (\d+) bytes .* copied (\d+) bytes/.exec(line);
    if (m) {
      received += Number(m[1]);
      copied += Number(m[2]);
    }
  }
  return { received, copied };
}

const big = (n: number, seed: number): string =>
  Array.from({ length: n }, (_, i) => String.fromCharCode(97 + ((i * 7 + seed) % 26))).join('');

describe.each(BACKENDS)('content the other side has is not sent again (%s repository)', (backend) => {
  let w: World;
  beforeEach(async () => {
    w = await World.create(backend);
  });
  afterEach(async () => {
    await w.dispose();
  });

  it('a renamed directory and a copied file: copied on the server, never sent; the teammate copies them locally', async () => {
    const files: Record<string, string> = {};
    for (let i = 0; i < 5; i++) files[`input/old/f${i}.csv`] = big(40_000, i);
    const a: Client = await w.client('alice', { ...files, 'output/r.txt': 'r1' });
    await w.sync(a, 'first');
    const b = await w.client('bob');
    await w.clone(b);
    moved(w);

    await rename(path.join(a.root, 'input/old'), path.join(a.root, 'input/new'));
    await put(a, 'output/r-copy.txt', 'r1');
    const r = await w.sync(a, 'renamed');
    expect(r.snapshotId).toBe('s2');
    expect(r.bytes.uploaded).toBe(0);
    expect(r.bytes.reused).toBe(5 * 40_000 + 2);
    expect([...r.uploaded].sort()).toEqual(
      [...Object.keys(files).map((p) => p.replace('/old/', '/new/')), 'output/r-copy.txt'].sort(),
    );
    const agent = moved(w);
    expect(agent.copied).toBe(5 * 40_000 + 2);
    expect(agent.received).toBeLessThan(40_000); // the new snapshot's metadata only
    expect(await w.remoteTree()).toEqual(await tree(a.root));

    const rb = await w.sync(b);
    expect(rb.kind).toBe('local-only');
    expect(rb.bytes.downloaded).toBe(0);
    expect(rb.bytes.reused).toBe(5 * 40_000 + 2);
    expect(await tree(b.root)).toEqual(await tree(a.root));
  });

  it('two new files with one content: sent once, copied once', async () => {
    const a = await w.client('alice', { 'input/x.txt': 'x' });
    await w.sync(a, 'first');
    moved(w);
    const body = big(30_000, 3);
    await put(a, 'input/one.bin', body);
    await put(a, 'input/two.bin', body);
    const r = await w.sync(a, 'twins');
    expect(r.bytes).toEqual({ uploaded: 30_000, downloaded: 0, reused: 30_000 });
    const agent = moved(w);
    expect(agent.copied).toBe(30_000);
    expect(agent.received).toBeGreaterThanOrEqual(30_000);
    expect(agent.received).toBeLessThan(60_000);
    expect(await w.remoteTree()).toEqual(await tree(a.root));
  });

  it('small files travel packed: 200 files up and down in a handful of requests, each verified where it belongs', async () => {
    const files: Record<string, string> = {};
    for (let i = 0; i < 200; i++) files[`input/d${i % 7}/f${i}.csv`] = big(100 + ((i * 37) % 900), i);
    files['input/big.bin'] = big(300_000, 1); // bigger than a pack takes: alone
    const a = await w.client('alice', files);
    w.agentLog.splice(0);
    await w.sync(a, 'first');
    const up = w.agentLog.splice(0).join('\n');
    const m = /received \d+ bytes \((\d+) files\).*requests: (\d+) uploads/.exec(up);
    expect(m, up).not.toBeNull();
    expect(Number(m![1])).toBeGreaterThanOrEqual(201);
    expect(Number(m![2])).toBeLessThan(30); // 200 small files in packs of 32, the big one, the metadata
    expect(await w.remoteTree()).toEqual(await tree(a.root));

    const b = await w.client('bob');
    await w.clone(b);
    const down = w.agentLog.splice(0).join('\n');
    const d = /sent \d+ bytes \((\d+) files\).*requests: \d+ uploads, (\d+) downloads/.exec(down);
    expect(d, down).not.toBeNull();
    expect(Number(d![1])).toBeGreaterThanOrEqual(201);
    expect(Number(d![2])).toBeLessThan(30);
    expect(await tree(b.root)).toEqual(await tree(a.root));
  });

  it('files bigger than a pack stream at most BIG_IN_FLIGHT at a time', async () => {
    const files: Record<string, string> = {};
    for (let i = 0; i < 6; i++) files[`input/big${i}.bin`] = big(PACK_BYTES + 1000 * i + 1, i);
    for (let i = 0; i < 40; i++) files[`input/small/s${i}.txt`] = `small ${i}`;
    let inFlight = 0;
    let most = 0;
    w.wrapBackend = (fs) =>
      new Proxy(fs, {
        get(t, prop, recv) {
          const v = Reflect.get(t, prop, recv) as unknown;
          if (prop !== 'writeFile' || typeof v !== 'function') return v;
          return async (...args: [unknown, string, ...unknown[]]) => {
            const isBig = args[1].endsWith('.bin');
            if (isBig) most = Math.max(most, ++inFlight);
            try {
              return await (v as (...a: unknown[]) => Promise<unknown>).apply(t, args);
            } finally {
              if (isBig) inFlight--;
            }
          };
        },
      });
    const a = await w.client('alice', files);
    const r = await w.sync(a, 'first');
    expect(r.uploaded.filter((p) => p.endsWith('.bin'))).toHaveLength(6);
    expect(most).toBeGreaterThanOrEqual(1);
    expect(BIG_IN_FLIGHT).toBe(2);
    expect(most).toBeLessThanOrEqual(2); // six started together would all be here at once
    expect(await w.remoteTree()).toEqual(await tree(a.root));
  });

  it('a repository file that no longer matches its manifest is not copied: the content is sent, the snapshot is right', async () => {
    const a = await w.client('alice', { 'input/a.txt': 'the original content' });
    await w.sync(a, 'first');
    // the repository's copy is damaged behind dsg's back (same size)
    const damaged = path.join(w.currentDir, 'input/a.txt');
    await chmod(damaged, 0o644);
    await writeFile(damaged, 'THE ORIGINAL CONTENT');
    await put(a, 'input/b.txt', 'the original content');
    const r = await w.sync(a, 'copy of a');
    expect(r.bytes).toEqual({ uploaded: 20, downloaded: 0, reused: 0 });
    expect((await w.remoteTree())['input/b.txt']).toBe('the original content');
  });
});
