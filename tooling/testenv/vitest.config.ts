import { dsgVitestConfig } from './dist/vitest.js';

export default dsgVitestConfig();
