import dsg from '@dsg/eslint-config';

export default [
  ...dsg(import.meta.dirname, {
    forbiddenImports: ['@dsg/zfs-ops', '@dsg/posix-ops', '@dsg/transports', '@dsg/client-fs', '@dsg/cli', '@dsg/agent'],
  }),
  // End-to-end tests wire REAL implementations (devDependencies) into the coordinator; src/ stays forbidden.
  { files: ['test/e2e/**/*.ts'], rules: { 'no-restricted-imports': 'off' } },
];
