import { createXXHash3, type IHasher } from 'hash-wasm';
import type { HasherFactory, StreamHasher } from '@dsg/contracts';

/**
 * xxh3-64 (seed 0) from hash-wasm: WebAssembly inlined in JS, so the bundled
 * agent runs with plain node and needs no native module beside it. Same
 * digests as @dsg/manifest's createXxh3Hasher (16 lowercase hex digits; a
 * test compares them). hash-wasm makes hashers asynchronously, while a
 * HasherFactory is synchronous: one wasm instance is made at start and each
 * StreamHasher keeps its own saved state, loaded around every update (a few
 * hundred bytes copied per chunk; JS runs one update at a time).
 */
export async function createAgentHasher(): Promise<HasherFactory> {
  const wasm: IHasher = await createXXHash3();
  wasm.init();
  const initial = wasm.save();
  return (): StreamHasher => {
    let state = initial;
    return {
      update(chunk: Uint8Array): void {
        wasm.load(state);
        wasm.update(chunk);
        state = wasm.save();
      },
      digest(): string {
        wasm.load(state);
        return wasm.digest('hex');
      },
    };
  };
}
