import { describe, expect, it } from 'vitest';
import { ConfigError } from '@dsg/contracts';
import { DEFAULT_AGENT_TIMEOUT_S, agentIdleTimeoutMs } from '../src/ssh.js';
import { userConfigSchema } from '../src/config/user.js';

describe('agent idle timeout (stalled agent)', () => {
  const user = (agent_timeout?: number) =>
    userConfigSchema.parse({ user_id: 'a@b.org', ...(agent_timeout === undefined ? {} : { ssh: { agent_timeout } }) });
  it('defaults to 60 s; ssh.agent_timeout sets it; DSG_AGENT_TIMEOUT overrides; 0 = never', () => {
    expect(DEFAULT_AGENT_TIMEOUT_S).toBe(60);
    expect(agentIdleTimeoutMs(null, {})).toBe(60_000);
    expect(agentIdleTimeoutMs(user(7.5), {})).toBe(7500);
    expect(agentIdleTimeoutMs(user(7.5), { DSG_AGENT_TIMEOUT: '3' })).toBe(3000);
    expect(agentIdleTimeoutMs(user(), { DSG_AGENT_TIMEOUT: '0' })).toBe(0);
  });
  it('refuses a bad value', () => {
    expect(() => agentIdleTimeoutMs(null, { DSG_AGENT_TIMEOUT: 'soon' })).toThrow(ConfigError);
    expect(() => user(-1)).toThrow();
  });
});
