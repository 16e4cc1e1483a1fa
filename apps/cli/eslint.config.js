import dsg from '@dsg/eslint-config';

export default dsg(import.meta.dirname, { forbiddenImports: ['@dsg/agent'] });
