import dsg from '@dsg/eslint-config';

export default dsg(import.meta.dirname, { forbiddenImports: ['@dsg/cli', '@dsg/client-fs', '@dsg/coordinator'] });
