import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Reporter, TestModule, Vitest } from 'vitest/node';

interface SerializedErrorLike {
  name?: string;
  message?: string;
  stack?: string;
}

/**
 * Writes `test-results/unhandled.json`: the errors vitest caught outside any
 * test (an unhandled rejection, an error event after a test ended). They make
 * vitest exit 1 while its JSON report still counts every test as passed, so
 * the CI summary reads this file to name them. Always written (an empty list
 * too), so a stale file never speaks for a later run.
 */
export default class UnhandledErrorsReporter implements Reporter {
  private root = process.cwd();

  onInit(vitest: Vitest): void {
    this.root = vitest.config.root;
  }

  onTestRunEnd(_modules: ReadonlyArray<TestModule>, unhandledErrors: ReadonlyArray<SerializedErrorLike>): void {
    const errors = unhandledErrors.map((error) => ({
      name: String(error.name ?? 'Error'),
      message: String(error.message ?? ''),
      stack: String(error.stack ?? '')
        .split('\n')
        .slice(0, 12)
        .join('\n'),
    }));
    const dir = join(this.root, 'test-results');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'unhandled.json'), JSON.stringify({ errors }, null, 2) + '\n');
  }
}
