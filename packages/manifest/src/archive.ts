import { createRequire } from 'node:module';
import type * as Lz4 from 'lz4-napi';
import { ValidationError } from '@dsg/contracts';

// The native LZ4 binding loads on the first archive, not with this module:
// its loader cost every command 20–60 ms (status, init, list-files never
// touch an archive). It is CommonJS, so require() loads it synchronously.
let lz4: typeof Lz4 | undefined;
const binding = (): typeof Lz4 => (lz4 ??= createRequire(import.meta.url)('lz4-napi') as typeof Lz4);

/**
 * The largest manifest an archive may decompress to: 256 MiB.
 *
 * Why: an LZ4 frame can expand ~255× (a 2 MB archive from a hostile
 * repository or teammate made `dsg log` allocate 665 MiB). A manifest entry
 * is ~200 bytes of JSON, so 256 MiB is ~1.3 million files, 13× the largest
 * tree the benchmarks sync; parsing a manifest that size already takes
 * about 1 GiB of heap. It is also half of V8's longest string (~512 MiB),
 * past which a manifest could not be read at all.
 */
export const MAX_ARCHIVE_BYTES = 256 * 1024 * 1024;

const FRAME_MAGIC = 0x184d2204;
const BLOCK_MAX: Record<number, number> = { 4: 64 * 1024, 5: 256 * 1024, 6: 1024 * 1024, 7: 4 * 1024 * 1024 };

/**
 * `.dsg/archive/<sN>-sync.json.lz4`: the manifest JSON in an LZ4 frame (the
 * ancestor's format). Give the bytes when you have them: a manifest's text
 * as a string costs a copy as large as the manifest.
 */
export function compressArchive(manifestJson: string | Uint8Array): Buffer {
  const bytes =
    typeof manifestJson === 'string'
      ? Buffer.from(manifestJson, 'utf8')
      : Buffer.from(manifestJson.buffer, manifestJson.byteOffset, manifestJson.byteLength);
  return binding().compressFrameSync(bytes);
}

function corrupt(source: string | undefined, why: string, cause?: unknown): ValidationError {
  return new ValidationError(`${source ?? 'archive'}: not a valid LZ4 frame (${why})`, source ? { file: source } : {}, {
    ...(cause === undefined ? {} : { cause }),
    recoveryHint: 'The archived manifest is corrupt; fetch it again from the repository.',
  });
}

/**
 * The most bytes a single LZ4 frame can decompress to, read from its headers
 * alone (LZ4 Frame Format 1.6.x): the declared content size when there is one
 * is checked too, but the bound never trusts it — every compressed block
 * counts as its frame's block maximum (the decoder refuses a block that
 * expands past it), every stored block as its length. Anything but exactly
 * one frame (skippable or legacy frames, bytes after the end mark) is refused,
 * so the decoder sees only what was measured.
 */
export function archiveSizeBound(archive: Uint8Array, source?: string): { bound: number; declared: number | null } {
  const buf = Buffer.from(archive.buffer, archive.byteOffset, archive.byteLength);
  if (buf.length < 7 || buf.readUInt32LE(0) !== FRAME_MAGIC) throw corrupt(source, 'no LZ4 frame magic');
  const flg = buf[4]!;
  const bd = buf[5]!;
  if (flg >> 6 !== 1) throw corrupt(source, `frame version ${flg >> 6}`);
  const blockChecksum = (flg & 0x10) !== 0;
  const hasSize = (flg & 0x08) !== 0;
  const contentChecksum = (flg & 0x04) !== 0;
  const hasDict = (flg & 0x01) !== 0;
  const blockMax = BLOCK_MAX[(bd >> 4) & 7];
  if (blockMax === undefined) throw corrupt(source, `block size id ${(bd >> 4) & 7}`);
  let pos = 6;
  let declared: number | null = null;
  if (hasSize) {
    if (buf.length < pos + 8) throw corrupt(source, 'truncated header');
    const n = buf.readBigUInt64LE(pos);
    declared = n > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(n);
    pos += 8;
  }
  if (hasDict) pos += 4;
  pos += 1; // header checksum (the decoder checks it)
  let bound = 0;
  for (;;) {
    if (buf.length < pos + 4) throw corrupt(source, 'truncated');
    const word = buf.readUInt32LE(pos);
    pos += 4;
    if (word === 0) break; // end mark
    const size = word & 0x7fffffff;
    const stored = (word & 0x80000000) !== 0;
    if (size > blockMax) throw corrupt(source, `a block of ${size} bytes in a frame of ${blockMax}-byte blocks`);
    bound += stored ? size : blockMax;
    pos += size + (blockChecksum ? 4 : 0);
    if (pos > buf.length) throw corrupt(source, 'truncated');
  }
  if (contentChecksum) pos += 4;
  if (pos !== buf.length)
    throw corrupt(source, pos > buf.length ? 'truncated' : `${buf.length - pos} bytes after the frame`);
  return { bound, declared };
}

function tooLarge(source: string | undefined, what: string, max: number): ValidationError {
  const mib = (n: number): string => `${Math.ceil(n / 1024 / 1024)} MiB`;
  return new ValidationError(
    `${source ?? 'archive'}: ${what}, more than the ${mib(max)} limit for a manifest; refused before decompressing`,
    source ? { file: source } : {},
    {
      code: 'ARCHIVE_TOO_LARGE',
      recoveryHint: `dsg does not write manifests this large (about ${Math.round(max / 200 / 1e5) / 10} million files): the archive is corrupt or was not written by dsg; fetch it again from the repository.`,
    },
  );
}

/**
 * The manifest JSON of an archive. Refused with a `ValidationError` naming
 * `source` — before any output is allocated — when it is not exactly one
 * valid LZ4 frame, or when its declared size or the most its blocks can
 * expand to exceeds `maxBytes` (default `MAX_ARCHIVE_BYTES`, code
 * `ARCHIVE_TOO_LARGE`).
 */
export function decompressArchive(archive: Uint8Array, source?: string, opts: { maxBytes?: number } = {}): string {
  const max = opts.maxBytes ?? MAX_ARCHIVE_BYTES;
  const { bound, declared } = archiveSizeBound(archive, source);
  if (declared !== null && declared > max) throw tooLarge(source, `it declares ${declared} bytes of content`, max);
  if (bound > max) throw tooLarge(source, `its blocks can expand to ${bound} bytes`, max);
  let out: Buffer;
  try {
    out = binding().decompressFrameSync(Buffer.from(archive.buffer, archive.byteOffset, archive.byteLength));
  } catch (e) {
    throw corrupt(source, e instanceof Error ? e.message : String(e), e);
  }
  if (out.length > max) throw tooLarge(source, `it decompressed to ${out.length} bytes`, max);
  return out.toString('utf8');
}
