// A consumer of @dsg/manifest alone: scan a small tree, build two chained
// snapshots, serialize and parse them back, check every hash, and show that a
// tampered manifest breaks the chain. Prints one JSON line; exits 1 on any mismatch.
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  buildSnapshot,
  entriesHash,
  hashBytes,
  hashFile,
  parseManifest,
  scanProject,
  serializeManifest,
  validateChain,
  type Manifest,
} from '@dsg/manifest';

const problems: string[] = [];
const check = (ok: boolean, what: string): void => {
  if (!ok) problems.push(what);
};

const root = await mkdtemp(join(tmpdir(), 'dsg-manifest-consumer-'));
try {
  await mkdir(join(root, 'input'), { recursive: true });
  await mkdir(join(root, 'output'), { recursive: true });
  await writeFile(join(root, 'input', 'a.csv'), 'id,value\n1,alpha\n');
  await writeFile(join(root, 'output', 'b.txt'), 'result\n');
  await symlink('../input/a.csv', join(root, 'output', 'latest.csv'));

  const user = 'consumer@example.org';
  const projectConfig = { name: 'consumer', data_dirs: ['input', 'output'] };

  // s1: the tree as scanned
  const scan1 = await scanProject({ root, dataDirs: ['input', 'output'], user });
  check(scan1.warnings.length === 0, `scan warnings: ${JSON.stringify(scan1.warnings)}`);
  check(scan1.manifest.entries.size === 3, `expected 3 entries, got ${scan1.manifest.entries.size}`);
  const a = scan1.manifest.entries.get('input/a.csv');
  check(a?.type === 'file' && a.hash === (await hashFile(join(root, 'input', 'a.csv'))), 'input/a.csv hash');
  check(a?.type === 'file' && a.hash === hashBytes(Buffer.from('id,value\n1,alpha\n')), 'hashBytes = hashFile');
  const s1 = buildSnapshot(scan1.manifest.entries.values(), {
    snapshotId: 's1',
    previous: null,
    message: 'first',
    user,
    createdAt: new Date(),
    projectConfig,
  });

  // s2: one file changed, chained to s1
  await writeFile(join(root, 'input', 'a.csv'), 'id,value\n1,alpha\n2,beta\n');
  const scan2 = await scanProject({ root, dataDirs: ['input', 'output'], user, previous: s1 });
  const s2 = buildSnapshot(scan2.manifest.entries.values(), {
    snapshotId: 's2',
    previous: s1.metadata,
    message: 'second',
    user,
    createdAt: new Date(),
    projectConfig,
  });

  // the format round-trips byte for byte, and the hashes survive it
  const texts = [s1, s2].map((m) => serializeManifest(m));
  const parsed: Manifest[] = texts.map((t, i) => parseManifest(t, `s${i + 1}.json`));
  parsed.forEach((m, i) => {
    check(serializeManifest(m) === texts[i], `s${i + 1} does not re-serialize to the same bytes`);
    check(entriesHash(m.entries.values()) === m.metadata?.entries_hash, `s${i + 1} entries_hash`);
  });
  check(parsed[1]?.metadata?.snapshot_previous === 's1', 's2 does not name s1 as previous');
  check(
    parsed[0]?.metadata?.snapshot_hash !== parsed[1]?.metadata?.snapshot_hash,
    'two snapshots with the same snapshot_hash',
  );
  const chain = validateChain(parsed);
  check(chain.ok, `chain: ${JSON.stringify(chain)}`);

  // a manifest edited by hand (a hash changed, metadata kept) breaks the chain at that snapshot
  const tampered = parseManifest(texts[1]!.replace(/"hash": "[0-9a-f]{16}"/, '"hash": "0000000000000000"'));
  const broken = validateChain([parsed[0]!, tampered]);
  check(!broken.ok && broken.snapshotId === 's2', `tampered s2 not detected: ${JSON.stringify(broken)}`);

  console.log(
    JSON.stringify({
      ok: problems.length === 0,
      entries: parsed[1]?.entries.size,
      snapshots: parsed.map((m) => ({
        id: m.metadata?.snapshot_id,
        entriesHash: m.metadata?.entries_hash,
        snapshotHash: m.metadata?.snapshot_hash,
      })),
      chain: chain.ok,
      tamperDetected: !broken.ok,
      bytes: texts.map((t) => Buffer.byteLength(t)),
      problems,
    }),
  );
} finally {
  await rm(root, { recursive: true, force: true });
}
if (problems.length > 0) process.exit(1);
