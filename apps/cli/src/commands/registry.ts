import type { Ctx } from '../context.js';

// Command modules load on use: `dsg --help` and completion never load the transports or backends.
const history = () => import('./history-commands.js');
const local = () => import('./local-commands.js');
const syncs = () => import('./sync-commands.js');
const demo = () => import('./demo-command.js');
const backups = () => import('./backup-commands.js');
const diff = () => import('./diff-command.js');

export interface OptionSpec {
  flags: string;
  description: string;
  choices?: string[];
  default?: unknown;
  /** repeatable: values are collected into an array */
  collect?: boolean;
}

/** One command: its name, arguments, options, examples (shown in --help) and handler. */
export interface CommandSpec {
  name: string;
  description: string;
  args?: { name: string; description: string }[];
  options?: OptionSpec[];
  examples: string[];
  /** runs inside a project: outside one it fails before its module is loaded */
  inProject?: boolean;
  run(ctx: Ctx, args: unknown[], opts: Record<string, unknown>): Promise<number | void>;
}

// Commander hands options over as loosely typed values; each handler declares what it reads.
/* eslint-disable @typescript-eslint/no-unsafe-argument, @typescript-eslint/no-explicit-any */
const o = (x: Record<string, unknown>): any => x;
const s = (x: unknown): string => x as string;
const so = (x: unknown): string | undefined => x as string | undefined;

const types = ['zfs', 'posix'];

/** How this person reaches the repository host: the same on every command that connects by options. */
const sshOptions: OptionSpec[] = [
  { flags: '--port <n>', description: 'ssh port of the repository host (default: ssh_config, else 22)' },
  { flags: '--ssh-user <user>', description: 'ssh login on the repository host (default: ssh_config, else you)' },
  {
    flags: '--agent <cmd>',
    description:
      'agent command on the host: one command line ("node /opt/dsg-agent.mjs", quotes group words), or one word per --agent (default dsg-agent)',
    collect: true,
  },
];
/** init and clone also take xfs: the original HRDAG/dsg's flat repository (`<path>/<name>` with `.dsg/` inside) */
const repoTypes = ['zfs', 'posix', 'xfs'];

export const commandSpecs: CommandSpec[] = [
  {
    name: 'init',
    description: 'write .dsgconfig.yml if absent, then create the repository from the data dirs (snapshot s1)',
    options: [
      { flags: '--host <host>', description: 'repository host (ssh host or alias), or localhost' },
      {
        flags: '--repo-path <path>',
        description: 'posix: directory holding repositories; zfs: mountpoint of the pool dataset',
      },
      { flags: '--repo-name <name>', description: "repository name (default: this directory's name)" },
      {
        flags: '--repo-type <type>',
        description: "backend (xfs: the original dsg's flat repository)",
        choices: repoTypes,
      },
      { flags: '--pool <dataset>', description: 'zfs: the parent dataset, e.g. tank/dsg' },
      ...sshOptions,
      { flags: '--sudo', description: 'zfs: the agent runs `sudo -n zfs` (logging in as a user other than root)' },
      { flags: '--data-dirs <list>', description: 'comma-separated data directories (default input,output,frozen)' },
      { flags: '-m, --message <text>', description: 'message of snapshot s1 (default "init")' },
      { flags: '--dry-run', description: 'show what would be done, change nothing' },
      { flags: '--force', description: 'never destroys history: an existing repository is still refused' },
      {
        flags: '--normalize',
        description:
          'first rename names in the data dirs that are refused only for being NFD (macOS) to NFC, as the original dsg does',
      },
    ],
    examples: [
      'dsg init --host localhost --repo-type posix --repo-path /srv/dsg --repo-name demo',
      'dsg init --host dsg-server --repo-type zfs --pool tank/dsg --repo-path /var/repos/dsg',
    ],
    run: async (ctx, _a, x) => (await syncs()).initCommand(ctx, o(x)),
  },
  {
    name: 'clone',
    description: 'fetch the latest snapshot into a new working directory (read-only on the server)',
    args: [
      { name: '[source]', description: '<host>:<path>/<name> (omit inside a directory that has .dsgconfig.yml)' },
      { name: '[dest]', description: 'directory to create (default: the repository name)' },
    ],
    options: [
      {
        flags: '--repo-type <type>',
        description: "backend of the source (xfs: the original dsg's flat repository; found either way)",
        choices: repoTypes,
      },
      { flags: '--pool <dataset>', description: 'zfs: the parent dataset mounted at <path>' },
      { flags: '--dry-run', description: 'check the source, change nothing' },
      ...sshOptions,
      {
        flags: '--sudo',
        description:
          "zfs: the agent runs `sudo -n zfs` to read the source (kept in this copy's .dsg/config.local.yml for later commands)",
      },
      { flags: '--resume', description: 'continue an interrupted clone (files already there are kept by hash)' },
    ],
    examples: [
      'dsg clone localhost:/srv/dsg/demo demo-copy',
      'dsg clone dsg-server:/var/repos/dsg/demo --repo-type zfs --pool tank/dsg',
    ],
    run: async (ctx, a, x) => (await syncs()).cloneCommand(ctx, so(a[0]), so(a[1]), o(x)),
  },
  {
    name: 'status',
    inProject: true,
    description: 'compare the working directory, the last sync and the repository (like git status)',
    options: [
      {
        flags: '--offline',
        description:
          'compare with the last sync only: connects to nothing, shows what changed here since then (not what the repository has)',
      },
    ],
    examples: [
      'dsg status',
      'dsg status --verbose   # with the sync state of each path',
      'dsg status --json',
      'dsg status --offline   # no connection: changes here since the last sync',
    ],
    run: async (ctx, _a, x) => (await syncs()).statusCommand(ctx, o(x)),
  },
  {
    name: 'sync',
    inProject: true,
    description: 'upload, download and delete so both sides match; one transaction → the next snapshot',
    options: [
      { flags: '-m, --message <text>', description: 'snapshot message (default "sync")' },
      { flags: '--dry-run', description: 'show the plan, change nothing' },
      { flags: '--continue', description: 'apply the resolutions written in conflicts.txt' },
      {
        flags: '--normalize',
        description:
          'first rename names in the data dirs that are refused only for being NFD (macOS) to NFC, as the original dsg does',
      },
      { flags: '--force', description: 'accepted for compatibility; conflicts are never overridden' },
      {
        flags: '--accept-config',
        description:
          'accept the data dirs / ignore rules of a .dsgconfig.yml a teammate changed (shown by `dsg status`); applies from the next sync',
      },
    ],
    examples: [
      'dsg sync -m "new extracts from the field"',
      'dsg sync --dry-run',
      'dsg sync --continue   # after filling in conflicts.txt',
      'dsg sync --accept-config   # after reviewing the change `dsg status` shows',
    ],
    run: async (ctx, _a, x) => (await syncs()).syncCommand(ctx, o(x)),
  },
  {
    name: 'log',
    inProject: true,
    description: 'snapshots, newest first: id, time, user, message, files added/changed/removed',
    options: [
      { flags: '-n, --number <n>', description: 'how many (default 10)' },
      { flags: '--since <date>', description: 'only snapshots at or after this date' },
      { flags: '--author <text>', description: 'only snapshots by users containing this text' },
    ],
    examples: ['dsg log -n 5', 'dsg log --author ana@example.org --json'],
    run: async (ctx, _a, x) => (await history()).logCommand(ctx, o(x)),
  },
  {
    name: 'blame',
    inProject: true,
    description: 'every snapshot in which a file was added, changed or removed, with user and hash',
    args: [{ name: '<file>', description: 'path of the file (relative to where you are)' }],
    examples: ['dsg blame input/survey.csv'],
    run: async (ctx, a) => (await history()).blameCommand(ctx, s(a[0])),
  },
  {
    name: 'snapfetch',
    inProject: true,
    description:
      'a file as it was in snapshot sN, verified: to stdout, or a file outside the data dirs (never overwrites without --force)',
    args: [{ name: '<file>', description: 'path of the file in the project' }],
    options: [
      { flags: '-s, --snapshot <sN>', description: 'snapshot id, e.g. s2' },
      {
        flags: '-o, --output <file>',
        description:
          'where to write; - for stdout (default: stdout when it is not a terminal, else a new file under the temp dir; a file inside a data dir is uploaded by the next sync)',
      },
      { flags: '--force', description: 'overwrite the output file if it exists' },
    ],
    examples: [
      'dsg snapfetch input/survey.csv --snapshot s1 | less',
      'dsg snapfetch input/survey.csv --snapshot s1 -o /tmp/old.csv --force',
      'dsg snapfetch input/survey.csv --snapshot s1 -o - > old.csv',
    ],
    run: async (ctx, a, x) => (await history()).snapfetchCommand(ctx, s(a[0]), o(x)),
  },
  {
    name: 'diff',
    inProject: true,
    description:
      'one file here, as of the last sync and in the repository: sizes, hashes, and a unified diff for text (writes nothing)',
    args: [{ name: '<file>', description: 'path of the file (relative to where you are)' }],
    options: [{ flags: '--offline', description: 'compare with the last sync only; connects to nothing' }],
    examples: ['dsg diff input/survey.csv', 'dsg diff input/survey.csv --offline', 'dsg diff input/survey.csv --json'],
    run: async (ctx, a, x) => (await diff()).diffCommand(ctx, s(a[0]), o(x)),
  },
  {
    name: 'snapmount',
    inProject: true,
    description: 'read-only view of a snapshot on the repository host (ZFS: a mounted clone; posix: the snapshot dir)',
    options: [
      { flags: '-s, --snapshot <sN>', description: 'snapshot id' },
      { flags: '--mountpoint <dir>', description: 'where to mount (default: chosen by the backend)' },
      { flags: '--unmount <dir>', description: 'undo an earlier snapmount' },
    ],
    examples: ['dsg snapmount --snapshot s3', 'dsg snapmount --unmount /var/repos/dsg/demo-view-s3-1a2b3c4d'],
    run: async (ctx, _a, x) => (await history()).snapmountCommand(ctx, o(x)),
  },
  {
    name: 'list-files',
    inProject: true,
    description: 'the entries of the last sync: size, mtime, user',
    options: [{ flags: '--path <prefix>', description: 'only entries under this path' }],
    examples: ['dsg list-files --path input'],
    run: async (ctx, _a, x) => (await local()).listFilesCommand(ctx, o(x)),
  },
  {
    name: 'list-repos',
    description: 'repositories on a host',
    options: [
      { flags: '--host <host>', description: "host (default: the project's, or default_host)" },
      {
        flags: '--path <dir>',
        description: "posix root, or zfs mountpoint (default: the project's, or default_project_path)",
      },
      { flags: '--repo-type <type>', description: 'backend', choices: types },
      { flags: '--pool <dataset>', description: 'zfs parent dataset' },
      ...sshOptions,
      { flags: '--sudo', description: 'zfs: the agent runs `sudo -n zfs` (logging in as a user other than root)' },
    ],
    examples: [
      'dsg list-repos --host localhost --path /srv/dsg',
      'dsg list-repos --host dsg-server --path /srv/dsg --ssh-user dsg --agent "node /opt/dsg/dsg-agent.mjs"',
    ],
    run: async (ctx, _a, x) => (await local()).listReposCommand(ctx, { ...o(x), type: x['repoType'] }),
  },
  {
    name: 'validate-config',
    description: 'check the config files and that the repository host answers',
    options: [
      { flags: '--no-backend', description: 'do not contact the repository host' },
      { flags: '--fix-legacy', description: 'rewrite a legacy (transport: ssh) .dsgconfig.yml in the current form' },
    ],
    examples: ['dsg validate-config', 'dsg validate-config --no-backend --json'],
    run: async (ctx, _a, x) => (await local()).validateConfigCommand(ctx, o(x)),
  },
  {
    name: 'validate-file',
    inProject: true,
    description: "check a file's name against the rules and its hash against the last sync",
    args: [{ name: '<file>', description: 'path of the file' }],
    examples: ['dsg validate-file output/result.csv'],
    run: async (ctx, a) => (await local()).validateFileCommand(ctx, s(a[0])),
  },
  {
    name: 'validate-snapshot',
    inProject: true,
    description: "recompute the hashes of a snapshot's files and compare them with its manifest",
    options: [{ flags: '-s, --snapshot <sN>', description: 'snapshot id (default: the latest)' }],
    examples: ['dsg validate-snapshot --snapshot s2'],
    run: async (ctx, _a, x) => (await history()).validateSnapshotCommand(ctx, o(x)),
  },
  {
    name: 'validate-chain',
    inProject: true,
    description: 'check the hash chain of every snapshot',
    examples: ['dsg validate-chain'],
    run: async (ctx) => (await history()).validateChainCommand(ctx),
  },
  {
    name: 'clean',
    inProject: true,
    description:
      'remove leftovers of interrupted transactions and old backups (dry run unless --no-dry-run); --backups: remove kept backups now',
    options: [
      {
        flags: '--backups',
        description:
          'remove the backups kept in .dsg/backup (all, or --older-than); no connection, --dry-run to look first',
      },
      {
        flags: '--older-than <duration>',
        description: 'with --backups: only those older than this (30m, 12h, 7d, 2w)',
      },
      { flags: '--dry-run', description: 'show what would be removed, remove nothing' },
      {
        flags: '--target <what>',
        description: 'what to clean',
        choices: ['all', 'staging', 'backups', 'orphans'],
        default: 'all',
      },
      { flags: '--no-dry-run', description: 'really remove (without --backups)' },
      { flags: '--max-age-days <n>', description: 'backups older than this many days (default 30)' },
      { flags: '--force', description: 'all backups, whatever their age' },
    ],
    examples: [
      'dsg clean --backups --older-than 7d',
      'dsg clean --backups --dry-run --json',
      'dsg clean',
      'dsg clean --target backups --no-dry-run',
    ],
    run: async (ctx, _a, x) => {
      const b = await backups();
      b.checkCleanMode(o(x));
      return x['backups'] ? b.cleanBackupsCommand(ctx, o(x)) : (await local()).cleanCommand(ctx, o(x));
    },
  },
  {
    name: 'backups',
    inProject: true,
    description: 'list what syncs kept in .dsg/backup (replaced or deleted files): path, original path, time, size',
    examples: ['dsg backups', 'dsg backups --json', 'dsg clean --backups --older-than 7d'],
    run: async (ctx) => (await backups()).backupsCommand(ctx),
  },
  {
    name: 'demo',
    description: 'a complete local demo in a temp dir: init, sync, clone, log, blame, snapfetch (no server needed)',
    options: [{ flags: '--keep', description: 'keep the demo directory instead of removing it' }],
    examples: ['dsg demo', 'dsg demo --keep'],
    run: async (ctx, _a, x) => (await demo()).demoCommand(ctx, o(x)),
  },
];
