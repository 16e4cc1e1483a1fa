#!/usr/bin/env node
import { appendFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { ConfigError, DsgError } from '@dsg/contracts';
import {
  AGENT_REPOSITORY_TYPES,
  AGENT_TARGET_FLAGS,
  agentTargetOf,
  type AgentTargetOptions,
} from '@dsg/transports/server';
import { createAgentHasher } from './hasher.js';
import { promote, replicate, replicationText } from './replicate.js';
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

/** The `--type` and target flags `serve` takes, on another command (replicate, promote). */
function targetOptions(cmd: Command): Command {
  cmd.addOption(
    new Option('--type <type>', 'repository backend').choices(AGENT_REPOSITORY_TYPES).makeOptionMandatory(),
  );
  for (const f of Object.values(AGENT_TARGET_FLAGS)) {
    if ('value' in f) cmd.option(`${f.flag} ${f.value}`, f.description);
    else cmd.option(f.flag, f.description, false);
  }
  return cmd;
}

const collect = (v: string, prev: string[]): string[] => [...prev, v];

targetOptions(
  program
    .command('replicate')
    .description(
      'copy every committed snapshot to a read-only replica: ZFS repositories with syncoid, posix ones with rsync',
    ),
)
  .requiredOption(
    '--to <[user@]host:pool/parent>',
    'where the replicas are: <parent>/<name> over ssh, or pool/parent here (posix: [user@]host:/abs/parent or /abs/parent)',
  )
  .option('--repository <name>', 'replicate this repository only (default: every repository under --pool)')
  .addOption(new Option('--via <engine>', 'the replication engine').choices(['syncoid']).default('syncoid'))
  .option('--ssh-port <port>', 'ssh port of the replica host')
  .option('--ssh-key <file>', 'ssh private key for the replica host')
  .option(
    '--ssh-option <option>',
    'an ssh -o option (repeatable), e.g. UserKnownHostsFile=/etc/dsg/known_hosts',
    collect,
    [],
  )
  .option('--primary-name <name>', "this host's name in the replicas' dsg:replica-of (default: its host name)")
  .option('--syncoid <path>', 'the syncoid binary', 'syncoid')
  .option('--rsync <path>', 'the rsync binary (--type posix)')
  .option('--json', 'print the report as JSON', false)
  .action(
    async (
      o: AgentTargetOptions & {
        to: string;
        repository?: string;
        sshPort?: string;
        sshKey?: string;
        sshOption: string[];
        primaryName?: string;
        syncoid: string;
        rsync?: string;
        json: boolean;
      },
    ) => {
      if (o.sshPort !== undefined && !/^\d{1,5}$/.test(o.sshPort))
        throw new ConfigError(`--ssh-port ${JSON.stringify(o.sshPort)} is not a port number`, { field: 'sshPort' });
      const run = await replicate(
        {
          target: agentTargetOf(o),
          to: o.to,
          ...(o.repository !== undefined ? { repository: o.repository } : {}),
          ssh: {
            ...(o.sshPort !== undefined ? { port: Number(o.sshPort) } : {}),
            ...(o.sshKey !== undefined ? { key: o.sshKey } : {}),
            options: o.sshOption,
          },
          ...(o.primaryName !== undefined ? { primaryName: o.primaryName } : {}),
          syncoid: o.syncoid,
          ...(o.rsync !== undefined ? { rsync: o.rsync } : {}),
          log,
        },
        await createAgentHasher(),
      );
      process.stdout.write(o.json ? JSON.stringify(run, null, 2) + '\n' : replicationText(run));
      if (run.failed.length) process.exitCode = 1;
    },
  );

targetOptions(
  program
    .command('promote')
    .description(
      'make the replica of a repository on this host its primary (zfs: readonly off, dsg:replica-of removed; posix: replica-of removed)',
    ),
)
  .requiredOption('--repository <name>', 'the repository to promote')
  .option('--json', 'print the result as JSON', false)
  .action(async (o: AgentTargetOptions & { repository: string; json: boolean }) => {
    const r = await promote(agentTargetOf(o), o.repository, await createAgentHasher(), log);
    process.stdout.write(
      o.json
        ? JSON.stringify(r, null, 2) + '\n'
        : `${r.repository}: ${r.dataset} is now a primary (it replicated ${r.formerPrimary}); point the project's .dsg/config.local.yml at this host and sync\n`,
    );
  });

try {
  await program.parseAsync(process.argv);
} catch (e) {
  const err = e as Error;
  log(`error: ${err.message}`);
  if (e instanceof DsgError) log(`hint: ${e.recoveryHint}`);
  // replicate/promote --json: the failure as a document too (serve's stdout is the protocol)
  if (process.argv.includes('--json') && process.argv[2] !== 'serve') {
    const error = e instanceof DsgError ? e.toJSON() : { name: err.name, code: 'INTERNAL', message: err.message };
    process.stdout.write(JSON.stringify({ error }, null, 2) + '\n');
  }
  process.exitCode = e instanceof DsgError && e.code === 'CONFIG' ? 2 : 1;
}
