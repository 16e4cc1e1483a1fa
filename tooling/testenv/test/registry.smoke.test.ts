import { describe, expect, it } from 'vitest';
import { requireRegistry } from '../src/index.js';

const reg = requireRegistry();

describe.skipIf(!reg)('local npm registry', () => {
  it('answers, knows the publishing token, not an unknown one', async () => {
    expect((await fetch(new URL('-/ping', reg!.url))).ok).toBe(true);
    const who = async (token: string) =>
      fetch(new URL('-/whoami', reg!.url), { headers: { authorization: `Bearer ${token}` } });
    const ok = await who(reg!.token);
    expect(ok.ok).toBe(true);
    expect(((await ok.json()) as { username: string }).username).toBe('dsg-ci');
    expect(await (await who('not-a-token')).json()).toEqual({});
  });

  it('refuses a publish without the token', async () => {
    const r = await fetch(new URL('@dsg%2fintruder', reg!.url), {
      method: 'PUT',
      headers: { authorization: 'Bearer not-a-token', 'content-type': 'application/json' },
      body: JSON.stringify({ name: '@dsg/intruder', versions: {} }),
    });
    expect(r.status).toBe(401);
  });

  it('holds no @dsg package it was not given (nothing is proxied for the scope)', async () => {
    const r = await fetch(new URL('@dsg%2fno-such-package', reg!.url));
    expect(r.status).toBe(404);
  });
});
