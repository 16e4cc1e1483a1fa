import dsg from '@dsg/eslint-config';

export default dsg(import.meta.dirname, {
  forbiddenImports: ['@dsg/zfs-ops', '@dsg/posix-ops', '@dsg/transports', '@dsg/coordinator', '@dsg/cli', '@dsg/agent'],
});
