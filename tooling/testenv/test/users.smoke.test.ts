import { spawnSync } from 'node:child_process';
import { statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { requireClientUser, requireSudoAgent, localUser } from '../src/index.js';

const client = requireClientUser();
const agent = requireSudoAgent();
const checkout = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

describe.skipIf(!client)('the non-root client user', () => {
  it('is unprivileged, owns its home, is not the agent login', () => {
    expect(client!.uid).toBeGreaterThan(0);
    expect(client!.gid).toBeGreaterThan(0);
    expect(statSync(client!.home).uid).toBe(client!.uid);
    if (agent) expect(localUser(agent.user)!.uid).not.toBe(client!.uid);
  });

  it('runs node as itself (spawn uid/gid) and reaches this checkout', () => {
    const r = spawnSync(
      process.execPath,
      [
        '-e',
        'const fs=require("fs");fs.accessSync(process.argv[1],fs.constants.R_OK);console.log(process.getuid(),process.getgid(),process.getgroups().join(","))',
        path.join(checkout, 'package.json'),
      ],
      {
        uid: client!.uid,
        gid: client!.gid,
        encoding: 'utf8',
      },
    );
    expect(r.status, r.stderr).toBe(0);
    const [uid, gid, groups] = r.stdout.trim().split(' ');
    expect(Number(uid)).toBe(client!.uid);
    expect(Number(gid)).toBe(client!.gid);
    expect(groups ?? '').not.toMatch(/(^|,)0(,|$)/); // root's supplementary groups are dropped
  });
});
