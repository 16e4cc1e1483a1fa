import dsg from '@dsg/eslint-config';

// consumers/ are programs for projects outside the monorepo (checked there by the tests, with
// only the published package installed), not part of this package's TypeScript project
export default [...dsg(import.meta.dirname), { ignores: ['consumers/**'] }];
