import { dsgVitestConfig } from '@dsg/testenv/vitest';

export default dsgVitestConfig();
