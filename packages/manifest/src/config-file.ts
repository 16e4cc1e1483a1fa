import { PROJECT_CONFIG_FILE } from '@dsg/contracts';

/** The project config file: never a manifest entry, it travels beside the manifest (contracts' layout). */
export const CONFIG_FILE = PROJECT_CONFIG_FILE;
