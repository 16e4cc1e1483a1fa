import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { defineConfig, type ViteUserConfig } from 'vitest/config';

/**
 * The vitest config every package uses: tests under test/, generous timeouts
 * (real ZFS and SSH), forks (tests spawn and kill processes), a JSON report
 * for .ci/run's totals, `unhandled.json` naming errors caught outside any
 * test, and a global setup that prints which real parts ran.
 */
export function dsgVitestConfig(extra: ViteUserConfig['test'] = {}): ViteUserConfig {
  return defineConfig({
    test: {
      include: ['test/**/*.test.ts'],
      // hang guards only: a 2-core CI machine under load may take minutes for an
      // end-to-end story, and a test must not fail for being slow (the 4-client
      // ZFS story, 5 min on a quiet box, passed 10 min once under a load of 25)
      testTimeout: 1_500_000,
      hookTimeout: 1_500_000,
      pool: 'forks',
      // vitest's default on a 2-core machine is one file at a time; these tests
      // spend much of their time waiting on zfs-fuse, sshd and child processes,
      // so two files overlap well. DSG_TEST_WORKERS overrides.
      maxWorkers: Number(process.env['DSG_TEST_WORKERS']) || Math.max(2, os.availableParallelism() - 1),
      passWithNoTests: true,
      globalSetup: [fileURLToPath(new URL('./global-setup.js', import.meta.url))],
      reporters: [
        'default',
        ['json', { outputFile: 'test-results/vitest.json' }],
        fileURLToPath(new URL('./unhandled-errors-reporter.js', import.meta.url)),
      ],
      ...extra,
    },
  });
}
