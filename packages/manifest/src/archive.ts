import { compressFrameSync, decompressFrameSync } from 'lz4-napi';
import { ValidationError } from '@dsg/contracts';

/** `.dsg/archive/<sN>-sync.json.lz4`: the manifest JSON in an LZ4 frame (the ancestor's format). */
export function compressArchive(manifestJson: string): Buffer {
  return compressFrameSync(Buffer.from(manifestJson, 'utf8'));
}

export function decompressArchive(b: Uint8Array, source?: string): string {
  try {
    return decompressFrameSync(Buffer.from(b.buffer, b.byteOffset, b.byteLength)).toString('utf8');
  } catch (e) {
    throw new ValidationError(`${source ?? 'archive'}: not a valid LZ4 frame`, source ? { file: source } : {}, {
      cause: e,
      recoveryHint: 'The archived manifest is corrupt; fetch it again from the repository.',
    });
  }
}
