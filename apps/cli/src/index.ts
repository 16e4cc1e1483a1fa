export { VERSION } from './version.js';
export * from './output/json-schemas.js';
export { EXIT, UsageError, UnsupportedError, exitCodeFor } from './output/errors.js';
export {
  projectConfigSchema,
  findProjectRoot,
  loadProjectConfig,
  type ProjectConfig,
  type RepositoryConfig,
} from './config/project.js';
export { userConfigSchema, loadUserConfig, userConfigCandidates, type UserConfig } from './config/user.js';
export { runCli } from './program.js';
