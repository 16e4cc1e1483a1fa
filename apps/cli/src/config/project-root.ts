import { access } from 'node:fs/promises';
import path from 'node:path';
import { ConfigError, PROJECT_CONFIG_FILE } from '@dsg/contracts';

// Kept apart from project.ts (YAML, schemas): finding the project is the
// first step of most commands, and outside a project it is the only one.

/** Walk up from `start` to the directory holding .dsgconfig.yml, like git finds .git. */
export async function findProjectRoot(start: string): Promise<string | null> {
  let dir = path.resolve(start);
  for (;;) {
    try {
      await access(path.join(dir, PROJECT_CONFIG_FILE));
      return dir;
    } catch {
      const up = path.dirname(dir);
      if (up === dir) return null;
      dir = up;
    }
  }
}

/** findProjectRoot, or the ConfigError every command gives outside a project. */
export async function requireProjectRoot(cwd: string): Promise<string> {
  const root = await findProjectRoot(cwd);
  if (root) return root;
  throw new ConfigError(
    `no ${PROJECT_CONFIG_FILE} found in ${cwd} or any parent directory`,
    { file: PROJECT_CONFIG_FILE },
    { recoveryHint: 'Run `dsg init` to create a project here, or `dsg clone` to fetch one, or cd into a project.' },
  );
}
