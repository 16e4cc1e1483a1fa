import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '@dsg/contracts';
import { findProjectRoot, loadProjectConfig, DEFAULT_DATA_DIRS } from '../src/config/project.js';
import { loadUserConfig, userConfigCandidates } from '../src/config/user.js';

function project(yaml: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'dsg-cfg-'));
  writeFileSync(path.join(dir, '.dsgconfig.yml'), yaml);
  return dir;
}

async function configError(p: Promise<unknown>): Promise<ConfigError> {
  const e = await p.then(
    () => null,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(ConfigError);
  return e as ConfigError;
}

describe('project config', () => {
  it('reads the current form with defaults for data_dirs and ignore', async () => {
    const dir = project('name: demo\nrepository:\n  type: posix\n  root: /srv/dsg\n');
    const p = await loadProjectConfig(dir);
    expect(p.config.data_dirs).toEqual(DEFAULT_DATA_DIRS);
    expect(p.config.ignore.names).toContain('.DS_Store');
    expect(p.config.ignore.suffixes).toEqual(['.tmp', '.pyc']);
    expect(p.config.repository).toEqual({ type: 'posix', root: '/srv/dsg' });
  });

  it('reads xfs as posix and a zfs repository with an agent command', async () => {
    expect(
      (await loadProjectConfig(project('name: d\nrepository: {type: xfs, root: /r}\n'))).config.repository.type,
    ).toBe('posix');
    const z = await loadProjectConfig(
      project(
        'name: d\nrepository: {type: zfs, host: srv, pool: tank/dsg, mountpoint: /var/repos/dsg, agent: /usr/local/bin/dsg-agent}\n',
      ),
    );
    expect(z.shared.repository).toMatchObject({ type: 'zfs', pool: 'tank/dsg', agent: ['/usr/local/bin/dsg-agent'] });
    // parsed, but never used from .dsgconfig.yml (a teammate's file): the agent command is personal
    expect(z.config.repository).toMatchObject({ type: 'zfs', pool: 'tank/dsg' });
    expect(z.config.repository.agent).toBeUndefined();
  });

  it('reads the legacy transport: ssh form', async () => {
    const p = await loadProjectConfig(
      project(
        'name: old\ntransport: ssh\nssh:\n  host: srv\n  path: /var/repos/zsd\n  name: old\n  type: zfs\nproject:\n  data_dirs: [input]\n',
      ),
    );
    expect(p.legacy).toBe(true);
    expect(p.config.repository).toEqual({ type: 'zfs', host: 'srv', pool: 'zsd', mountpoint: '/var/repos/zsd' });
    expect(p.config.data_dirs).toEqual(['input']);
  });

  it('names file, line and key for a wrong value', async () => {
    const dir = project('name: demo\nrepository:\n  type: posix\n  root: relative/dir\n');
    const e = await configError(loadProjectConfig(dir));
    expect(e.message).toContain(`${path.join(dir, '.dsgconfig.yml')}:4: repository.root`);
    expect(e.message).toMatch(/absolute path/);
    expect(e.details.line).toBe(4);
  });

  it('names the line of invalid YAML', async () => {
    const e = await configError(
      loadProjectConfig(project('name: demo\nrepository:\n  type: posix\n   root: [unclosed\n')),
    );
    expect(e.message).toMatch(/\.dsgconfig\.yml:\d+: invalid YAML/);
    expect(e.details.line).toBeGreaterThanOrEqual(3);
  });

  it('refuses an unknown backend type and an unknown key', async () => {
    const e1 = await configError(loadProjectConfig(project('name: d\nrepository:\n  type: ntfs\n  root: /r\n')));
    expect(e1.message).toMatch(/:3: repository\.type: .*zfs or posix/);
    const e2 = await configError(
      loadProjectConfig(project('name: d\nrepository: {type: posix, root: /r}\ndata_dir: [x]\n')),
    );
    expect(e2.message).toMatch(/:3: data_dir: unknown key/);
  });

  it('is found by walking up from a subdirectory', async () => {
    const dir = project('name: d\nrepository: {type: posix, root: /r}\n');
    mkdirSync(path.join(dir, 'input', 'deep'), { recursive: true });
    expect(await findProjectRoot(path.join(dir, 'input', 'deep'))).toBe(dir);
  });
});

describe('user config', () => {
  it('tries DSG_CONFIG_HOME, XDG_CONFIG_HOME, ~/.config, /etc in that order', () => {
    expect(userConfigCandidates({ DSG_CONFIG_HOME: '/a', XDG_CONFIG_HOME: '/b', HOME: '/h' })).toEqual([
      '/a/dsg.yml',
      '/b/dsg/dsg.yml',
      '/h/.config/dsg/dsg.yml',
      '/etc/dsg/dsg.yml',
    ]);
  });

  it('loads and validates, with backup_on_conflict defaulting to true', async () => {
    const d = mkdtempSync(path.join(os.tmpdir(), 'dsg-user-'));
    writeFileSync(path.join(d, 'dsg.yml'), 'user_id: ana@example.org\nssh:\n  key_path: /k\n');
    const u = await loadUserConfig({ DSG_CONFIG_HOME: d, HOME: d });
    expect(u?.config).toMatchObject({ user_id: 'ana@example.org', backup_on_conflict: true, ssh: { key_path: '/k' } });
    writeFileSync(path.join(d, 'dsg.yml'), 'user_name: Ana\nuser_id: not-an-email\n');
    const e = await configError(loadUserConfig({ DSG_CONFIG_HOME: d, HOME: d }));
    expect(e.message).toContain(':2: user_id');
  });
});
