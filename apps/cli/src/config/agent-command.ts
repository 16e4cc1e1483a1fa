import { parse } from 'shell-quote';
import * as z from 'zod';

/**
 * The agent command, one rule for every place a user gives it (`agent:` in
 * the user config and in .dsg/config.local.yml, `--agent` on init/clone/
 * list-repos; never .dsgconfig.yml, see loadProjectConfig). A list is taken word for word. One string is read as a command
 * line, as git reads core.sshCommand: words split at blanks, quotes group them
 * (`agent: node '/opt/dsg tools/dsg-agent.mjs'`). Unlike git it never reaches a
 * shell here: anything a shell would act on (`;`, `|`, `>`, `$(…)`, globs) is
 * refused, `$NAME` and `${NAME}` stay unexpanded, and the words are quoted again one by one
 * for the remote shell (transports' shellCommand).
 */
export function agentArgv(given: string | readonly string[]): string[] {
  if (typeof given !== 'string') return [...given];
  const words: string[] = [];
  for (const w of parse(given, (name) => `$${name}`)) {
    if (typeof w !== 'string') {
      const what = 'pattern' in w ? w.pattern : 'op' in w ? w.op : 'comment' in w ? `#${w.comment}` : JSON.stringify(w);
      throw new AgentCommandError(
        `the agent command ${JSON.stringify(given)} holds ${JSON.stringify(what)}, which only a shell would act on`,
      );
    }
    words.push(w);
  }
  if (words.length === 0) throw new AgentCommandError('the agent command is empty');
  return words;
}

export class AgentCommandError extends Error {}

/** The config field: a command line or a list [program, arg, …]; parsed to its words. */
export const agentCommandSchema = z
  .union([z.string().min(1), z.array(z.string().min(1)).min(1)], {
    error: 'expected the agent command: a command line ("node /opt/dsg-agent.mjs") or a list [program, arg, …]',
  })
  .transform((a, ctx) => {
    try {
      return agentArgv(a);
    } catch (e) {
      ctx.issues.push({ code: 'custom', message: (e as Error).message, input: a });
      return z.NEVER;
    }
  });
