import { xxh32 } from '@node-rs/xxhash';
import { decompressFrameSync } from 'lz4-napi';
import { describe, expect, it } from 'vitest';
import { ValidationError } from '@dsg/contracts';
import { archiveSizeBound, compressArchive, decompressArchive, MAX_ARCHIVE_BYTES } from '../src/archive.js';

const BLOCK = { 4: 64 * 1024, 7: 4 * 1024 * 1024 } as const;

/** One LZ4 block that expands to `len` bytes: literal 'a', a match at offset 1, five closing literals. */
function bombBlock(len: number): Buffer {
  const ext: number[] = [];
  let rest = len - 1 - 5 - 4 - 15; // literal, closing literals, minmatch, the token's 15
  while (rest >= 255) {
    ext.push(255);
    rest -= 255;
  }
  ext.push(rest);
  return Buffer.concat([
    Buffer.from([0x1f, 0x61, 0x01, 0x00]),
    Buffer.from(ext),
    Buffer.from([0x50, 0x62, 0x62, 0x62, 0x62, 0x62]),
  ]);
}

/** An LZ4 frame of the given blocks (a block is [bytes, stored?]), with a correct header checksum. */
function frame(bdId: 4 | 7, blocks: [Buffer, boolean][], o: { contentSize?: bigint } = {}): Buffer {
  const desc = [Buffer.from([0x60 | (o.contentSize !== undefined ? 0x08 : 0), bdId << 4])];
  if (o.contentSize !== undefined) {
    const s = Buffer.alloc(8);
    s.writeBigUInt64LE(o.contentSize);
    desc.push(s);
  }
  const d = Buffer.concat(desc);
  const parts: Buffer[] = [Buffer.from([0x04, 0x22, 0x4d, 0x18]), d, Buffer.from([(xxh32(d, 0) >>> 8) & 0xff])];
  for (const [b, stored] of blocks) {
    const s = Buffer.alloc(4);
    s.writeUInt32LE((b.length | (stored ? 0x80000000 : 0)) >>> 0);
    parts.push(s, b);
  }
  parts.push(Buffer.alloc(4));
  return Buffer.concat(parts);
}

function refusal(fn: () => unknown): ValidationError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ValidationError);
    return e as ValidationError;
  }
  throw new Error('not refused');
}

describe('archive size limit', () => {
  it('the crafted blocks are valid LZ4: three of them decompress to 3 × 64 KiB', () => {
    const b = frame(
      4,
      [0, 1, 2].map(() => [bombBlock(BLOCK[4]), false]),
    );
    expect(decompressFrameSync(b).length).toBe(3 * BLOCK[4]);
    expect(decompressArchive(b)).toBe(('a'.repeat(BLOCK[4] - 5) + 'bbbbb').repeat(3));
    expect(archiveSizeBound(b)).toEqual({ bound: 3 * BLOCK[4], declared: null });
  });

  it('a 2 MB archive that would expand to ~460 MiB is refused, naming it, before anything is allocated', () => {
    const block = bombBlock(BLOCK[4]);
    const n = Math.floor((2 * 1000 * 1000) / (block.length + 4));
    const b = frame(
      4,
      Array.from({ length: n }, () => [block, false]),
    );
    expect(b.length).toBeLessThan(2_000_001);
    expect(n * BLOCK[4]).toBeGreaterThan(450 * 1024 * 1024);
    const before = process.memoryUsage().arrayBuffers;
    const e = refusal(() => decompressArchive(b, '.dsg/archive/s7-sync.json.lz4'));
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(64 * 1024 * 1024);
    expect(e.code).toBe('ARCHIVE_TOO_LARGE');
    expect(e.details.file).toBe('.dsg/archive/s7-sync.json.lz4');
    expect(e.message).toContain('.dsg/archive/s7-sync.json.lz4');
    expect(e.message).toContain('256 MiB');
    expect(e.recoveryHint).toMatch(/fetch it again/);
  });

  it('4 MiB blocks count fully too (65 × 4 MiB > 256 MiB from a ~1 MB archive)', () => {
    const block = bombBlock(BLOCK[7]);
    const b = frame(
      7,
      Array.from({ length: 65 }, () => [block, false]),
    );
    expect(b.length).toBeLessThan(1_100_000);
    expect(refusal(() => decompressArchive(b, 's2')).code).toBe('ARCHIVE_TOO_LARGE');
  });

  it('a declared content size over the limit is refused even when the blocks are small', () => {
    const b = frame(4, [[bombBlock(1000), false]], { contentSize: 1n << 40n });
    const e = refusal(() => decompressArchive(b, 's3'));
    expect(e.code).toBe('ARCHIVE_TOO_LARGE');
    expect(e.message).toContain(`declares ${2 ** 40} bytes`);
  });

  it('a real multi-block archive round-trips under the default limit and is refused under a smaller one', () => {
    const json = JSON.stringify(
      {
        entries: Array.from({ length: 20_000 }, (_, i) => ({
          path: `input/dir${i % 97}/file-${i}.csv`,
          hash: (i * 2654435761).toString(16).padStart(16, '0'),
        })),
      },
      null,
      2,
    );
    const b = compressArchive(json);
    const { bound } = archiveSizeBound(b);
    expect(bound).toBeGreaterThanOrEqual(json.length);
    expect(bound - json.length).toBeLessThanOrEqual(BLOCK[7]);
    expect(bound).toBeLessThan(MAX_ARCHIVE_BYTES);
    expect(decompressArchive(b)).toBe(json);
    expect(decompressArchive(b, 's1', { maxBytes: bound })).toBe(json);
    expect(refusal(() => decompressArchive(b, 's1', { maxBytes: 1024 * 1024 })).code).toBe('ARCHIVE_TOO_LARGE');
  });

  it('stored blocks count their own length', () => {
    const b = frame(4, [[Buffer.from('{"a":1}'), true]]);
    expect(archiveSizeBound(b).bound).toBe(7);
    expect(decompressArchive(b)).toBe('{"a":1}');
  });

  it('anything but exactly one well-formed frame is refused as corrupt', () => {
    const ok = frame(4, [[Buffer.from('{}'), true]]);
    const cases: [Buffer, RegExp][] = [
      [Buffer.concat([ok, ok]), /bytes after the frame/],
      [Buffer.concat([ok, Buffer.from([0x50, 0x2a, 0x4d, 0x18, 0, 0, 0, 0])]), /bytes after the frame/], // a skippable frame
      [ok.subarray(0, ok.length - 2), /truncated/],
      [Buffer.from([0x02, 0x21, 0x4c, 0x18, 0, 0, 0, 0]), /magic/], // legacy frame
      [frame(4, [[Buffer.alloc(BLOCK[4] + 1), true]]), /block of 65537 bytes/],
      [Buffer.from('not lz4'), /magic/],
    ];
    for (const [b, why] of cases) {
      const e = refusal(() => decompressArchive(b, 's4-sync.json.lz4'));
      expect(e.code).toBe('VALIDATION');
      expect(e.message).toMatch(why);
      expect(e.details.file).toBe('s4-sync.json.lz4');
    }
    // a bad header checksum is still the decoder's to find
    const bad = Buffer.from(ok);
    bad[6] = bad[6]! ^ 0xff;
    expect(refusal(() => decompressArchive(bad)).message).toMatch(/not a valid LZ4 frame/);
  });
});
