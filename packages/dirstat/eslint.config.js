import dsg from '@dsg/eslint-config';

export default dsg(import.meta.dirname, {
  forbiddenImports: [
    '@dsg/contracts',
    '@dsg/manifest',
    '@dsg/zfs-ops',
    '@dsg/posix-ops',
    '@dsg/transports',
    '@dsg/client-fs',
    '@dsg/coordinator',
    '@dsg/cli',
    '@dsg/agent',
  ],
});
