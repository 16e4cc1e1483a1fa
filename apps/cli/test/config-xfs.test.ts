import { mkdtempSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import {
  loadProjectConfig,
  readLocalConfig,
  repositoryYaml,
  sharedRepository,
  writeLocalConfig,
} from '../src/config/project.js';
import { agentArgv, describeRepository } from '../src/connect.js';

function project(yaml: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'dsg-cfg-xfs-'));
  writeFileSync(path.join(dir, '.dsgconfig.yml'), yaml);
  return dir;
}

describe("the original's xfs repository config", () => {
  it('reads repository: {type: xfs, host, mountpoint} as the flat repository <mountpoint>/<name>', async () => {
    const p = await loadProjectConfig(
      project('name: d\nrepository:\n  type: xfs\n  host: localhost\n  mountpoint: /srv/x\n'),
    );
    expect(p.config.repository).toEqual({ type: 'posix', host: 'localhost', root: '/srv/x', flat: true });
    expect(p.legacy).toBe(false);
    expect(describeRepository(p.config.repository, 'd')).toBe('localhost:/srv/x/d (xfs)');
    expect(agentArgv(p.config.repository)).toEqual(['dsg-agent', 'serve', '--type', 'xfs', '--root', '/srv/x']);
  });

  it('reads the legacy transport: ssh + ssh: {host, path, type: xfs} the same way', async () => {
    const p = await loadProjectConfig(
      project('name: legacy\nssh:\n  host: localhost\n  path: /srv/x\n  type: xfs\ntransport: ssh\n'),
    );
    expect(p.legacy).toBe(true);
    expect(p.config.repository).toEqual({ type: 'posix', host: 'localhost', root: '/srv/x', flat: true });
  });

  it('keeps {type: posix, root} and {type: xfs, root} as they were (the layout on disk decides)', async () => {
    expect(
      (await loadProjectConfig(project('name: d\nrepository: {type: xfs, root: /r}\n'))).config.repository,
    ).toEqual({ type: 'posix', root: '/r' });
    expect(
      (await loadProjectConfig(project('name: d\nrepository: {type: posix, root: /r}\n'))).config.repository,
    ).toEqual({ type: 'posix', root: '/r' });
  });

  it('refuses mountpoint with type posix, both root and mountpoint, and neither, naming the line', async () => {
    await expect(loadProjectConfig(project('name: d\nrepository:\n  type: posix\n  mountpoint: /r\n'))).rejects.toThrow(
      /:4: repository\.mountpoint: mountpoint is for type xfs/,
    );
    await expect(
      loadProjectConfig(project('name: d\nrepository: {type: xfs, root: /r, mountpoint: /m}\n')),
    ).rejects.toThrow(/root or mountpoint, not both/);
    await expect(loadProjectConfig(project('name: d\nrepository: {type: xfs, host: h}\n'))).rejects.toThrow(
      /expected mountpoint/,
    );
    await expect(
      loadProjectConfig(project('name: d\nrepository: {type: xfs, host: h, mountpoint: rel}\n')),
    ).rejects.toThrow(/absolute path/);
  });

  it('writes the xfs form back: .dsg/config.local.yml and the shared block keep {type: xfs, host, mountpoint}', async () => {
    const dir = project('name: d\nrepository:\n  type: xfs\n  host: h\n  mountpoint: /srv/x\n');
    mkdirSync(path.join(dir, '.dsg'));
    const p = await loadProjectConfig(dir);
    const withUser = { ...p.config.repository, user: 'ana' };
    expect(repositoryYaml(withUser)).toEqual({ type: 'xfs', host: 'h', mountpoint: '/srv/x', user: 'ana' });
    expect(sharedRepository(withUser)).toEqual({ type: 'xfs', host: 'h', mountpoint: '/srv/x' });
    await writeLocalConfig(dir, { name: 'd', repository: withUser });
    expect(
      (parse(readFileSync(path.join(dir, '.dsg/config.local.yml'), 'utf8')) as { repository: unknown }).repository,
    ).toEqual({ type: 'xfs', host: 'h', mountpoint: '/srv/x', user: 'ana' });
    expect((await readLocalConfig(dir))?.repository).toEqual(withUser);
    // a working copy of the original (synced, no local file yet) pins the same thing and reports no difference afterwards
    writeFileSync(path.join(dir, '.dsg/last-sync.json'), '{}');
    const q = await loadProjectConfig(dir);
    expect(q.notices).toEqual([]);
  });
});
