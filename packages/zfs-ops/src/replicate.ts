import { execa } from 'execa';
import { DsgError, snapshotNumber, ValidationError } from '@dsg/contracts';
import { assertDatasetName } from './names.js';
import { PROP } from './operations.js';
import { REPLICA_PROP } from './replica.js';
import type { Zfs } from './zfs.js';

/** How syncoid reaches a remote target over ssh (its --sshport, --sshkey, --sshoption). */
export interface SyncoidSsh {
  port?: number;
  key?: string;
  /** `-o` options of ssh, e.g. `UserKnownHostsFile=/etc/dsg/known_hosts` */
  options?: string[];
}

export interface ReplicateDatasetOptions {
  /** the repository dataset on this machine, and the zfs it runs */
  source: { zfs: Zfs; dataset: string };
  /**
   * The replica's dataset and the zfs that reaches it (over ssh for a remote
   * target). `host` absent: the target is on this machine (another pool).
   */
  target: { zfs: Zfs; dataset: string; host?: string; user?: string };
  /** the marker the replica carries: `<primary host>:<source dataset>` */
  primary: string;
  ssh?: SyncoidSsh;
  /** the syncoid binary (default `syncoid` from PATH) */
  syncoid?: string;
  log?: (line: string) => void;
}

export interface ReplicationReport {
  source: string;
  target: string;
  /** the `@sN` this run added to the replica, oldest first */
  sent: string[];
  /** the replica's newest `@sN` after the run (null: the source has none yet) */
  head: string | null;
  /** the sum of syncoid's size estimates (`zfs send -nP`), null when it gave none (zfs-fuse) */
  estimatedBytes: number | null;
}

/**
 * syncoid 2.1 pastes its arguments into shell command lines (its own, and
 * ssh's on the far side), so everything dsg passes it is held to a charset
 * with no shell meaning and never starts with `-`.
 */
const SYNCOID_SAFE = /^[A-Za-z0-9_/][A-Za-z0-9_.:@/=+,-]*$/;

export function assertSyncoidArg(what: string, value: string): void {
  if (typeof value !== 'string' || value.length > 1024 || !SYNCOID_SAFE.test(value)) {
    throw new ValidationError(
      `refused ${what} ${JSON.stringify(String(value).slice(0, 100))}: syncoid passes it through a shell`,
      { field: what },
      { recoveryHint: 'Use letters, digits and _ . : @ / = + , - only (not starting with -).' },
    );
  }
}

/** syncoid's command line: committed snapshots only (no sync snapshot of its own), no resume tokens. */
export function syncoidArgs(o: Pick<ReplicateDatasetOptions, 'source' | 'target' | 'ssh'>): string[] {
  const args = ['--no-sync-snap', '--no-resume', '--no-clone-handling'];
  const ssh = o.ssh ?? {};
  if (ssh.port !== undefined) {
    if (!Number.isInteger(ssh.port) || ssh.port < 1 || ssh.port > 65535) {
      throw new ValidationError(`refused ssh port ${String(ssh.port)}`, { field: 'sshPort' });
    }
    args.push(`--sshport=${ssh.port}`);
  }
  if (ssh.key !== undefined) {
    assertSyncoidArg('ssh key path', ssh.key);
    args.push(`--sshkey=${ssh.key}`);
  }
  for (const opt of ssh.options ?? []) {
    assertSyncoidArg('ssh option', opt);
    args.push(`--sshoption=${opt}`);
  }
  assertDatasetName(o.source.dataset);
  assertDatasetName(o.target.dataset);
  let target = o.target.dataset;
  if (o.target.host !== undefined) {
    assertSyncoidArg('target host', o.target.host);
    if (o.target.user !== undefined) assertSyncoidArg('target user', o.target.user);
    target = `${o.target.user !== undefined ? `${o.target.user}@` : ''}${o.target.host}:${target}`;
  }
  return [...args, o.source.dataset, target];
}

const UNITS: Record<string, number> = { KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3 };

/** The sum of syncoid's `(~ 12 KB)` estimates, or null when every one was UNKNOWN. */
export function estimatedBytes(output: string): number | null {
  let sum: number | null = null;
  for (const m of output.matchAll(/\(~ ([0-9.]+) (KB|MB|GB)\)/g))
    sum = (sum ?? 0) + Math.round(Number(m[1]) * UNITS[m[2]!]!);
  return sum;
}

/** `name@snap` → guid of every snapshot of a dataset. */
async function snapshotGuids(zfs: Zfs, dataset: string): Promise<Map<string, string>> {
  const props = await zfs.getProps([dataset], ['guid'], { depth: 1 });
  const out = new Map<string, string>();
  for (const [name, p] of props) {
    if (name.startsWith(`${dataset}@`)) out.set(name.slice(dataset.length + 1), p.get('guid') ?? '');
  }
  return out;
}

const byNumber = (a: string, b: string): number => (snapshotNumber(a) ?? 0) - (snapshotNumber(b) ?? 0);

function refuse(message: string, hint: string): DsgError {
  return new DsgError('ZFS_CONFIG', message, { recoveryHint: hint });
}

/**
 * Replicates one repository dataset with syncoid: every committed `@sN`
 * the replica lacks, incrementally. The caller holds the repository lock and
 * has run recovery, so no transaction temporary exists; any other snapshot
 * on the source is refused, since syncoid sends every intermediate snapshot.
 * The target must be absent, or a replica of this very source (its
 * snapshots a subset of the source's, same guids): dsg never rolls back a
 * dataset it did not make. Afterwards the replica is readonly=on, carries
 * `dsg:replica-of` and the `@sN`'s dsg:* properties (zfs send leaves user
 * properties behind). A re-run with nothing new sends nothing.
 */
export async function replicateDataset(o: ReplicateDatasetOptions): Promise<ReplicationReport> {
  const src = o.source.dataset;
  const tgt = o.target.dataset;
  const where = o.target.host !== undefined ? `${o.target.host}:${tgt}` : tgt;
  const args = syncoidArgs(o);
  const srcSnaps = await snapshotGuids(o.source.zfs, src);
  const foreign = [...srcSnaps.keys()].filter((s) => snapshotNumber(s) === null);
  if (foreign.length) {
    throw refuse(
      `${src} holds snapshots dsg did not commit (${foreign.slice(0, 5).join(', ')}${foreign.length > 5 ? ', …' : ''}): syncoid would send them too`,
      `Destroy them (zfs destroy ${src}@<name>) or keep them elsewhere; dsg replicates only its @sN.`,
    );
  }
  const committed = [...srcSnaps.keys()].sort(byNumber);
  const report: ReplicationReport = { source: src, target: where, sent: [], head: null, estimatedBytes: null };
  if (!committed.length) return report;

  let before = new Map<string, string>();
  if (await o.target.zfs.exists(tgt)) {
    const marker = await replicaMarker(o.target.zfs, tgt);
    if (marker !== null && marker !== o.primary) {
      throw refuse(
        `${where} is a replica of ${marker}, not of ${o.primary}`,
        'Replicate to another parent dataset, or destroy that replica first.',
      );
    }
    before = await snapshotGuids(o.target.zfs, tgt);
    const alien = [...before].filter(([s, g]) => srcSnaps.get(s) !== g).map(([s]) => s);
    if (alien.length) {
      throw refuse(
        `${where} exists and has snapshots that are not ${src}'s (${alien.slice(0, 5).join(', ')}): it is not a replica of it, and dsg never overwrites it`,
        `Replicate to another parent dataset, or destroy ${tgt} on that host if it is an old copy.`,
      );
    }
  } else {
    const parent = tgt.slice(0, tgt.lastIndexOf('/'));
    if (!parent || !(await o.target.zfs.exists(parent))) {
      throw refuse(
        `the target's parent dataset ${parent || tgt} does not exist${o.target.host !== undefined ? ` on ${o.target.host}` : ''}`,
        `Create it first (zfs create ${parent || tgt}); replicas are received beneath it.`,
      );
    }
  }

  if (committed.some((s) => !before.has(s))) {
    const r = await execa(o.syncoid ?? 'syncoid', args, {
      reject: false,
      all: true,
      stdin: 'ignore',
      encoding: 'utf8',
      shell: false,
    });
    const output = String(r.all ?? '');
    for (const line of output.split('\n')) if (line.trim()) o.log?.(`syncoid: ${line}`);
    if (r.exitCode !== 0) {
      const tail = output.trim().split('\n').slice(-4).join(' | ');
      throw new DsgError(
        'ZFS',
        `syncoid ${src} → ${where} failed (exit ${String(r.exitCode ?? r.signal ?? '?')}): ${tail || r.message}`,
        {
          recoveryHint:
            'Nothing half-received is kept by ZFS; run replicate again. Check ssh access to the target and that `syncoid` and `zfs` work there.',
        },
      );
    }
    report.estimatedBytes = estimatedBytes(output);
  }

  const after = await snapshotGuids(o.target.zfs, tgt);
  const missing = committed.filter((s) => after.get(s) !== srcSnaps.get(s));
  if (missing.length) {
    throw new DsgError('ZFS', `after syncoid, ${where} still lacks ${missing.join(', ')} of ${src}`, {
      recoveryHint: 'Run replicate again; the agent log has syncoid output.',
    });
  }
  await markReplica(o.target.zfs, tgt, o.primary);
  await copySnapshotProps(o.source.zfs, src, o.target.zfs, tgt, committed);
  report.sent = committed.filter((s) => !before.has(s));
  report.head = committed[committed.length - 1] ?? null;
  return report;
}

async function replicaMarker(zfs: Zfs, dataset: string): Promise<string | null> {
  const v = (await zfs.getProps([dataset], [REPLICA_PROP])).get(dataset)?.get(REPLICA_PROP);
  return v === undefined || v === '' || v === '-' ? null : v;
}

/** readonly=on and the marker, each set only when it differs (a re-run changes nothing). */
async function markReplica(zfs: Zfs, dataset: string, primary: string): Promise<void> {
  const props = (await zfs.getProps([dataset], ['readonly', REPLICA_PROP])).get(dataset);
  if (props?.get(REPLICA_PROP) !== primary) await zfs.set(dataset, { [REPLICA_PROP]: primary });
  // zfs-fuse answers "off (temporary)" for a readonly dataset it mounted rw: set it anyway
  if (props?.get('readonly') !== 'on') await zfs.set(dataset, { readonly: 'on' });
}

const SNAP_PROPS = [PROP.message, PROP.manifestHash, PROP.user, PROP.createdAt];

/** The `@sN` properties `dsg log` shows, copied to the replica's snapshots that lack them. */
async function copySnapshotProps(srcZfs: Zfs, src: string, tgtZfs: Zfs, tgt: string, snaps: string[]): Promise<void> {
  const [srcProps, tgtProps] = await Promise.all([
    srcZfs.getProps([src], SNAP_PROPS, { depth: 1 }),
    tgtZfs.getProps([tgt], [PROP.manifestHash], { depth: 1 }),
  ]);
  for (const snap of snaps) {
    // getProps leaves out a user property that is not set: absent here = not copied yet
    if (tgtProps.get(`${tgt}@${snap}`)?.has(PROP.manifestHash)) continue;
    const from = srcProps.get(`${src}@${snap}`);
    const set: Record<string, string> = {};
    for (const k of SNAP_PROPS) {
      const v = from?.get(k);
      if (v !== undefined && v !== '' && v !== '-') set[k] = v;
    }
    if (Object.keys(set).length) await tgtZfs.set(`${tgt}@${snap}`, set);
  }
}

/**
 * Makes a replica a primary again: removes `dsg:replica-of` and readonly.
 * Returns the primary it replicated. Refused when the dataset is no replica.
 */
export async function promoteReplica(zfs: Zfs, dataset: string): Promise<string> {
  assertDatasetName(dataset);
  if (!(await zfs.exists(dataset))) {
    throw new DsgError('NOT_FOUND', `${dataset} does not exist`, {
      recoveryHint: 'Check the --pool and --repository names (zfs list).',
    });
  }
  const primary = await replicaMarker(zfs, dataset);
  if (primary === null) {
    throw refuse(
      `${dataset} is not a replica (it has no ${REPLICA_PROP}): nothing to promote`,
      'It is a primary already.',
    );
  }
  await zfs.set(dataset, { readonly: 'off' });
  await zfs.inherit(dataset, REPLICA_PROP);
  return primary;
}
