#!/usr/bin/env node
import { appendFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { DsgError } from '@dsg/contracts';
import {
  AGENT_REPOSITORY_TYPES,
  AGENT_TARGET_FLAGS,
  agentTargetOf,
  type AgentTargetOptions,
} from '@dsg/transports/server';
import { createAgentHasher } from './hasher.js';
import { createAgentServer, type AgentConfig } from './serve.js';
import { VERSION } from './version.js';

// stdout carries the protocol: every diagnostic goes to stderr.
let logFile: string | null = null;
const log = (line: string): void => {
  const text = `dsg-agent[${process.pid}] ${new Date().toISOString()} ${line}\n`;
  if (logFile) {
    try {
      appendFileSync(logFile, text);
    } catch {
      /* logging must never break the session */
    }
  }
  if (!process.stderr.destroyed) process.stderr.write(text);
};

const program = new Command('dsg-agent').version(VERSION).description('dsg-agent: the server side of dsg');
const serve = program
  .command('serve')
  .description('serve one client session of the agent protocol on stdin/stdout')
  .addOption(new Option('--type <type>', 'repository backend').choices(AGENT_REPOSITORY_TYPES).makeOptionMandatory());
// the target flags (--root, --pool, --mountpoint, --sudo): one table with the CLI that writes them
for (const f of Object.values(AGENT_TARGET_FLAGS)) {
  if ('value' in f) serve.option(`${f.flag} ${f.value}`, f.description);
  else serve.option(f.flag, f.description, false);
}
serve
  .option('--log-file <file>', 'also append diagnostics to this file (stderr dies with the connection)')
  .option(
    '--restrict-to-repository <name>',
    'serve this one repository only: open of any other name is refused, listings show only it',
  )
  .option(
    '--read-only',
    'refuse every change (lock, begin, write, delete, commit, recover, snapshot mounts): clone, status, log and snapfetch only',
    false,
  )
  .option(
    '--client-silence <seconds>',
    'end the session (roll back, unlock) when a client that PINGs sends nothing this long; 0: never',
    '120',
  )
  .action(
    async (
      o: AgentTargetOptions & {
        logFile?: string;
        restrictToRepository?: string;
        readOnly: boolean;
        clientSilence: string;
      },
    ) => {
      logFile = o.logFile ?? null;
      // stderr is the SSH channel: once the connection is gone, writing there must not kill the cleanup
      process.stderr.on('error', () => {});
      const limits = {
        ...(o.restrictToRepository !== undefined ? { restrictToRepository: o.restrictToRepository } : {}),
        readOnly: o.readOnly,
        clientSilenceMs: /^\d+(\.\d+)?$/.test(o.clientSilence) ? Number(o.clientSilence) * 1000 : NaN,
      };
      const config: AgentConfig = { ...agentTargetOf(o), ...limits };
      const server = createAgentServer(config, await createAgentHasher(), log);
      // a terminated agent still rolls back and unlocks: ending stdin ends the session
      for (const sig of ['SIGTERM', 'SIGHUP', 'SIGINT'] as const) process.on(sig, () => process.stdin.destroy());
      await server.serve(process.stdin, process.stdout);
      log('session ended');
    },
  );

try {
  await program.parseAsync(process.argv);
} catch (e) {
  const err = e as Error;
  log(`error: ${err.message}`);
  if (e instanceof DsgError) log(`hint: ${e.recoveryHint}`);
  process.exitCode = e instanceof DsgError && e.code === 'CONFIG' ? 2 : 1;
}
