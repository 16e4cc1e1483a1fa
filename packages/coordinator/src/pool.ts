/**
 * Run fn over items with at most `limit` in flight; the first failure stops
 * new work and is rethrown after the running ones settle (so no transfer is
 * still writing while the caller rolls back). Hand-rolled: ten lines, and
 * the settle-before-rethrow rule is the point.
 */
export async function forEachLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed: { e: unknown } | null = null;
  const worker = async (): Promise<void> => {
    while (failed === null && next < items.length) {
      const item = items[next++]!;
      try {
        await fn(item);
      } catch (e) {
        failed ??= { e };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  if (failed !== null) throw (failed as { e: unknown }).e;
}
