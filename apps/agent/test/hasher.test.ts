import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createXxh3Hasher } from '@dsg/manifest';
import { createAgentHasher } from '../src/hasher.js';

describe('agent hasher (hash-wasm xxh3)', () => {
  it('gives the same digests as @dsg/manifest, however the input is chunked, with independent states', async () => {
    const factory = await createAgentHasher();
    expect(
      (() => {
        const h = factory();
        return h.digest();
      })(),
    ).toBe('2d06800538d394c2'); // XXH3_64bits("")
    for (const size of [0, 1, 3, 16, 17, 128, 129, 240, 241, 1024, 65_536 + 7, 3 << 20]) {
      const data = randomBytes(size);
      const ref = createXxh3Hasher();
      ref.update(data);
      const a = factory();
      const b = factory(); // interleaved with a: each keeps its own state
      for (let off = 0; off < size; off += 1000) {
        a.update(data.subarray(off, off + 1000));
        b.update(data.subarray(off, off + 333));
        b.update(data.subarray(off + 333, off + 1000));
      }
      expect(a.digest()).toBe(ref.digest());
      expect(b.digest()).toBe(ref.digest());
    }
  });
});
