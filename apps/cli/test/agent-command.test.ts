import { describe, expect, it } from 'vitest';
import { agentArgv, AgentCommandError, agentCommandSchema } from '../src/config/agent-command.js';

describe('the agent command: one string is a command line, a list is taken word for word', () => {
  it.each([
    ['dsg-agent', ['dsg-agent']],
    ['node /opt/dsg/dsg-agent.mjs', ['node', '/opt/dsg/dsg-agent.mjs']],
    ["node '/opt/dsg tools/dsg-agent.mjs'", ['node', '/opt/dsg tools/dsg-agent.mjs']],
    [
      'node "/opt/dsg tools/agent.mjs" --log-file /tmp/a.log',
      ['node', '/opt/dsg tools/agent.mjs', '--log-file', '/tmp/a.log'],
    ],
    ['  /usr/local/bin/dsg-agent  ', ['/usr/local/bin/dsg-agent']],
    ['$HOME/bin/dsg-agent', ['$HOME/bin/dsg-agent']], // never expanded here
  ])('%j → %j', (given, words) => {
    expect(agentArgv(given)).toEqual(words);
  });

  it('a list keeps its words, spaces and all', () => {
    expect(agentArgv(['node', '/a b/agent.mjs'])).toEqual(['node', '/a b/agent.mjs']);
  });

  it.each([
    ['dsg-agent; rm -rf ~', ';'],
    ['dsg-agent | tee /tmp/x', '|'],
    ['dsg-agent > /tmp/x', '>'],
    ['dsg-agent && id', '&&'],
    ['node /opt/*.mjs', '/opt/*.mjs'],
    ['dsg-agent $(id)', '('],
    ['dsg-agent # comment', '# comment'],
  ])('refuses %j: only a shell would act on %j', (given, what) => {
    expect(() => agentArgv(given)).toThrow(AgentCommandError);
    expect(() => agentArgv(given)).toThrow(JSON.stringify(what));
  });

  it('refuses an empty command', () => {
    expect(() => agentArgv('   ')).toThrow('the agent command is empty');
  });

  it('the config field parses the same way and reports a refused string as a config issue', () => {
    expect(agentCommandSchema.parse('node /x.mjs')).toEqual(['node', '/x.mjs']);
    expect(agentCommandSchema.parse(['node', '/x y.mjs'])).toEqual(['node', '/x y.mjs']);
    const bad = agentCommandSchema.safeParse('dsg-agent; id');
    expect(bad.success).toBe(false);
    expect(bad.error?.issues[0]?.message).toContain('which only a shell would act on');
  });
});
