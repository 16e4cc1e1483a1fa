import dsg from '@dsg/eslint-config';

const forbidden = [
  '@dsg/manifest',
  '@dsg/zfs-ops',
  '@dsg/posix-ops',
  '@dsg/client-fs',
  '@dsg/coordinator',
  '@dsg/cli',
  '@dsg/agent',
];

export default [
  ...dsg(import.meta.dirname, { forbiddenImports: forbidden }),
  // integration tests run the protocol over the real posix and ZFS backends (devDependencies); src/ still may not import them
  {
    files: ['test/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: forbidden
            .filter((p) => p !== '@dsg/posix-ops' && p !== '@dsg/zfs-ops')
            .map((p) => ({ group: [p, `${p}/*`], message: `tests may not import ${p}` })),
        },
      ],
    },
  },
];
