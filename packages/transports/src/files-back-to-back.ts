import { NotFoundError, ValidationError, exactly, type ByteStream, type SizedPath } from '@dsg/contracts';

/**
 * The bytes of a `readFiles` batch: each file in turn, exactly the size the
 * client expects, so it can cut the stream where each file ends. A file that
 * is missing or of another size fails the stream naming it: the batch cannot
 * go on without misplacing every byte after it. The agent serves a batch
 * with this; a client whose agent predates `readFiles` builds the same
 * stream from one read per file.
 */
export async function* filesBackToBack(
  files: readonly SizedPath[],
  open: (path: string) => Promise<ByteStream | null>,
  where: string,
  onFile: () => void = () => {},
): ByteStream {
  for (const f of files) {
    const s = await open(f.path);
    if (!s)
      throw new NotFoundError(`${f.path} is missing from ${where}`, {
        recoveryHint: 'The repository changed or is damaged; run `dsg status` and sync again.',
      });
    yield* exactly(
      s,
      f.size,
      (why) =>
        new ValidationError(
          `${f.path} in ${where}: ${why}`,
          { path: f.path },
          {
            code: 'HASH_MISMATCH',
            recoveryHint: 'The repository file differs from its manifest; `dsg validate-chain` checks the history.',
          },
        ),
    );
    onFile();
  }
}

/** Where a batch reads from, for its errors. */
export const batchSource = (snapshotId?: string): string =>
  snapshotId === undefined ? 'the repository' : `the repository snapshot ${snapshotId}`;
