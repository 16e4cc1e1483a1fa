import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError } from '@dsg/contracts';
import { resolveSshTarget } from '../src/index.js';
import { globFiles, MAX_INCLUDE_DEPTH } from '../src/ssh-config-include.js';
import { tempDir } from './helpers.js';

let tmp: { dir: string; remove(): Promise<void> };
let home: string | undefined;
beforeEach(async () => {
  tmp = await tempDir();
  home = process.env['HOME'];
});
afterEach(async () => {
  if (home === undefined) delete process.env['HOME'];
  else process.env['HOME'] = home;
  await tmp.remove();
});

const resolve = (host: string, file: string) =>
  resolveSshTarget({ host, sshConfigFile: file, knownHostsFile: '/dev/null' });

describe('ssh_config Include', () => {
  it('follows Include relative to ~/.ssh, with ~ and sorted globs; hidden files only when named', async () => {
    process.env['HOME'] = tmp.dir;
    const dotSsh = join(tmp.dir, '.ssh');
    await mkdir(join(dotSsh, 'config.d'), { recursive: true });
    await writeFile(join(dotSsh, 'config.d', '20-b.conf'), 'Host b\n  HostName b.example.org\n  Port 2202\n');
    await writeFile(
      join(dotSsh, 'config.d', '10-a.conf'),
      'Host b\n  HostName first-wins.example.org\nHost a\n  HostName a.example.org\n',
    );
    await writeFile(join(dotSsh, 'config.d', '.hidden.conf'), 'Host h\n  HostName hidden.example.org\n');
    await writeFile(join(dotSsh, 'extra'), 'Host x\n  User xuser\n');
    const file = join(dotSsh, 'config');
    await writeFile(
      file,
      'Include config.d/*.conf ~/.ssh/extra\nInclude config.d/missing-is-fine\n\nHost *\n  User everyone\n',
    );
    expect(resolve('a', file)).toMatchObject({ hostName: 'a.example.org', user: 'everyone' });
    expect(resolve('b', file)).toMatchObject({ hostName: 'first-wins.example.org', port: 2202 }); // 10-a before 20-b
    expect(resolve('x', file)).toMatchObject({ hostName: 'x', user: 'xuser' });
    expect(resolve('h', file).hostName).toBe('h');
    expect(globFiles(join(dotSsh, 'config.d', '[12]0-?.conf')).map((f) => f.slice(dotSsh.length + 10))).toEqual([
      '10-a.conf',
      '20-b.conf',
    ]);
    expect(globFiles(join(dotSsh, 'config.d', '[!1]0-*')).map((f) => f.slice(dotSsh.length + 10))).toEqual([
      '20-b.conf',
    ]);
    expect(globFiles(join(dotSsh, 'config.d', '.*'))).toEqual([join(dotSsh, 'config.d', '.hidden.conf')]);
  });

  it('an Include inside a Host block applies only under that block; its own blocks keep their conditions; then the block goes on', async () => {
    const inc = join(tmp.dir, 'inc');
    await writeFile(inc, 'User from-include\nHost target\n  Port 2999\nHost other\n  Port 2888\n');
    const file = join(tmp.dir, 'config');
    await writeFile(file, `Host t*\n  Include ${inc}\n  Port 2201\nHost *\n  User fallback\n`);
    expect(resolve('target', file)).toMatchObject({ user: 'from-include', port: 2999 }); // first value wins, as in OpenSSH
    expect(resolve('tother', file)).toMatchObject({ user: 'from-include', port: 2201 });
    // under a block that does not apply nothing included applies, not even its own Host other (OpenSSH's NEVERMATCH)
    expect(resolve('other', file)).toMatchObject({ user: 'fallback', port: 22 });
  });

  it('a ProxyCommand and keywords in any case from an included file are honoured, not dropped', async () => {
    const inc = join(tmp.dir, 'proxies');
    await writeFile(inc, 'host jumpy\n  hostname 10.0.0.7\n  PROXYCOMMAND ssh -W "%h:%p" bastion # kept verbatim\n');
    const file = join(tmp.dir, 'config');
    await writeFile(file, `Include ${inc}\n`);
    expect(resolve('jumpy', file)).toMatchObject({
      hostName: '10.0.0.7',
      proxyCommand: 'ssh -W "%h:%p" bastion # kept verbatim',
    });
  });

  it('refuses a cycle and nesting deeper than OpenSSH allows, naming the files', async () => {
    const a = join(tmp.dir, 'a');
    const b = join(tmp.dir, 'b');
    await writeFile(a, `Include ${b}\n`);
    await writeFile(b, `Host *\n  Include ${a}\n`);
    let err: unknown;
    try {
      resolve('x', a);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).message).toBe(`ssh config Include cycle: ${a} → ${b} → ${a}`);
    for (let i = 0; i <= MAX_INCLUDE_DEPTH + 1; i++)
      await writeFile(
        join(tmp.dir, `d${i}`),
        `Include ${join(tmp.dir, `d${i + 1}`)}\nHost d${i}\n  Port ${2000 + i}\n`,
      );
    expect(() => resolve('x', join(tmp.dir, 'd0'))).toThrow(/nested more than 16 deep/);
    // exactly 16 levels below the top file are fine
    await writeFile(join(tmp.dir, `d${MAX_INCLUDE_DEPTH}`), `Host d${MAX_INCLUDE_DEPTH}\n  Port 2999\n`);
    expect(resolve(`d${MAX_INCLUDE_DEPTH}`, join(tmp.dir, 'd0')).port).toBe(2999);
  });

  it('an unreadable included file is a ConfigError naming it and the chain', async () => {
    const file = join(tmp.dir, 'config');
    const bad = join(tmp.dir, 'bad');
    await writeFile(bad, 'Host "unterminated\n');
    await writeFile(file, `Include ${bad}\n`);
    expect(() => resolve('x', file)).toThrow(new RegExp(`cannot read ssh config ${bad} \\(included from ${file}\\)`));
  });
});
