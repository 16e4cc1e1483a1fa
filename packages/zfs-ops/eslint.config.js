import dsg from '@dsg/eslint-config';

const forbidden = [
  '@dsg/manifest',
  '@dsg/posix-ops',
  '@dsg/transports',
  '@dsg/client-fs',
  '@dsg/coordinator',
  '@dsg/cli',
  '@dsg/agent',
];

export default [
  ...dsg(import.meta.dirname, { forbiddenImports: forbidden }),
  // Tests build the original's manifests (last-sync.json, sync-messages.json) with @dsg/manifest
  // (a devDependency); src/ still may not import it.
  {
    files: ['test/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: forbidden
            .filter((p) => p !== '@dsg/manifest')
            .map((p) => ({
              group: [p, `${p}/*`],
              message: `this package may not import ${p} (see docs/ARCHITECTURE.md §1)`,
            })),
        },
      ],
    },
  },
];
